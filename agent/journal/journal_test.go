package journal

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/remedyhq/remedy/executors"
)

func TestJournalSurvivesReopenAndTornLine(t *testing.T) {
	dir := t.TempDir()
	j, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Write(Entry{ID: "a", Started: true}); err != nil {
		t.Fatal(err)
	}
	if err := j.Write(Entry{ID: "a", Result: &executors.Result{ID: "a", Status: executors.Succeeded}}); err != nil {
		t.Fatal(err)
	}
	if err := j.Write(Entry{ID: "b", Started: true}); err != nil {
		t.Fatal(err)
	}
	j.Close()
	// A crash mid-write leaves half a line.
	f, _ := os.OpenFile(filepath.Join(dir, "actions.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"id":"c","resu`)
	f.Close()

	j, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if s := j.Get("a"); s.Result == nil || s.Result.Status != executors.Succeeded || s.Starts != 1 {
		t.Fatalf("a = %+v", s)
	}
	if s := j.Get("b"); s.Result != nil || s.Starts != 1 {
		t.Fatalf("b = %+v", s)
	}
	if s := j.Get("c"); s.Starts != 0 || s.Result != nil {
		t.Fatalf("torn line must be ignored, c = %+v", s)
	}
}
