// Package journal is the node agent's record of the actions it has run, so that a
// redelivered action reports its earlier result instead of being applied twice. It is an
// append-only JSON-lines file, fsynced per entry, loaded into memory at start.
package journal

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/remedyhq/remedy/executors"
)

// Entry is one line: an action started, or its result.
type Entry struct {
	ID      string            `json:"id"`
	Started bool              `json:"started,omitempty"`
	Result  *executors.Result `json:"result,omitempty"`
}

// State of an action id in the journal.
type State struct {
	Starts int               // times execution started
	Result *executors.Result // nil until finished
}

// Journal is the file and its index.
type Journal struct {
	mu    sync.Mutex
	f     *os.File
	state map[string]State
}

// Open loads (or creates) the journal in dir.
func Open(dir string) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal dir: %w", err)
	}
	path := filepath.Join(dir, "actions.jsonl")
	j := &Journal{state: map[string]State{}}
	if f, err := os.Open(path); err == nil {
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			var e Entry
			if json.Unmarshal(sc.Bytes(), &e) != nil || e.ID == "" {
				continue // a torn last line after a crash
			}
			j.apply(e)
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("read journal: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	j.f = f
	return j, nil
}

func (j *Journal) apply(e Entry) {
	s := j.state[e.ID]
	if e.Started {
		s.Starts++
	}
	if e.Result != nil {
		s.Result = e.Result
	}
	j.state[e.ID] = s
}

// Get returns what the journal knows of an action id.
func (j *Journal) Get(id string) State {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.state[id]
}

// Write appends an entry durably.
func (j *Journal) Write(e Entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode journal entry: %w", err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, err := j.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write journal: %w", err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("sync journal: %w", err)
	}
	j.apply(e)
	return nil
}

// Close closes the file.
func (j *Journal) Close() error { return j.f.Close() }
