package sqlite_test

import (
	"testing"

	"github.com/remedyhq/remedy/engine/audit/audittest"
)

func TestIncidentReader(t *testing.T) { audittest.RunIncidentReader(t, backend) }
