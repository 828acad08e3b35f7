package approval

import (
	"context"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/remedyhq/remedy/engine/guard"
	"github.com/remedyhq/remedy/engine/policy"
)

// TestApprovalPageInABrowser drives the page in Debian's headless chromium
// (hack/deps.d/50-browser.sh): log in with a token, see the pending action with its
// context, approve it with a reason.
func TestApprovalPageInABrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: run hack/deps.d/50-browser.sh")
	}
	f := newFixture(t, guard.Approval{TTL: time.Hour})
	f.hold(t, "act-1", "node-7", policy.RiskHigh, "engine")
	tk, err := LoadTokens("testdata/approvers.yaml")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(Handler(HandlerOptions{Service: f.svc, Tokens: tk}))
	defer srv.Close()

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()), chromedp.Flag("disable-sync", true))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	err = chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/approvals"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), "bob-token-0123456789ab"),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("req-act-1")),
	)
	if err != nil {
		t.Fatal(err)
	}
	text := func(sel chromedp.ID) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(sel))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if who := text("who"); who != "bob" {
		t.Errorf("signed in as %q", who)
	}
	row := text("req-act-1")
	for _, want := range []string{"node.cordon", "node-7", "risk high", "act-1", "frozen", "by engine"} {
		if !strings.Contains(row, want) {
			t.Errorf("row lacks %q:\n%s", want, row)
		}
	}
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`#req-act-1 form[action$="/approve"] input[name=reason]`), "checked in the browser"),
		chromedp.Click(chromedp.ID("approve-act-1")),
		chromedp.WaitVisible(chromedp.ID("message")),
		chromedp.WaitVisible(chromedp.ID("empty")),
	)
	if err != nil {
		t.Fatal(err)
	}
	if msg := text("message"); msg != "approved act-1" {
		t.Errorf("message %q", msg)
	}
	r, err := f.svc.Get(context.Background(), "act-1")
	if err != nil {
		t.Fatal(err)
	}
	if r.State != Approved || r.DecidedBy != "user:bob" || r.Reason != "checked in the browser" || len(f.run.ran) != 1 {
		t.Errorf("after the click: %+v, ran %d", r, len(f.run.ran))
	}
}
