package approval

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/remedyhq/remedy/engine/guard"
	"github.com/remedyhq/remedy/engine/policy"
	"github.com/remedyhq/remedy/engine/webauth"
)

// TestApprovalPageInABrowser drives the page in Debian's headless chromium
// (hack/deps.d/50-browser.sh): log in with a token, see the pending action with its
// context, approve it with a reason, log out. A page on another origin (another port of
// the same host: same-site, so the SameSite=Strict cookie goes with its form) posts an
// approval of a second action in the same browser and is refused.
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
	f.hold(t, "act-2", "node-8", policy.RiskHigh, "engine")
	tk, err := webauth.LoadTokens("testdata/approvers.yaml")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(Handler(HandlerOptions{Service: f.svc, Tokens: tk}))
	defer srv.Close()
	// The attacker's page: a form that approves act-2 on the approvals server.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><form method="post" action="%s/approvals/act-2/approve">
<input type="hidden" name="reason" value="csrf"><input type="hidden" name="csrf" value="guess">
<button type="submit" id="go">win a prize</button></form>`, srv.URL)
	}))
	defer evil.Close()

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
		chromedp.WaitNotPresent(chromedp.ID("req-act-1")),
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

	// Still logged in, the approver visits the attacker's page and clicks its button.
	err = chromedp.Do(ctx,
		chromedp.Navigate(evil.URL),
		chromedp.Click(chromedp.ID("go")),
		chromedp.WaitVisible(chromedp.CSS("body pre")),
	)
	if err != nil {
		t.Fatal(err)
	}
	body, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(body, "cross-origin request refused") {
		t.Errorf("the foreign page got: %q", body)
	}
	if r, _ := f.svc.Get(context.Background(), "act-2"); r.State != Pending || len(f.run.ran) != 1 {
		t.Fatalf("after the foreign page: act-2 is %s, ran %d", r.State, len(f.run.ran))
	}

	// Log out: the page shows the login form again and the session is gone.
	err = chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/approvals"),
		chromedp.WaitVisible(chromedp.ID("req-act-2")),
		chromedp.Click(chromedp.ID("logout")),
		chromedp.WaitVisible(chromedp.ID("token")),
	)
	if err != nil {
		t.Fatal(err)
	}
	if msg := text("message"); msg != "logged out" {
		t.Errorf("message %q", msg)
	}
}
