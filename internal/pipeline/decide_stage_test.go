package pipeline

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/auth"
	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/store"
)

// Decide checks the rules of one pending approval and must decide that
// one. It decided by action name alone, in another transaction, so when
// two stages' approvals of the same name were pending (staging's still
// pending as Decide read it, production's requested since), bob, checked
// under staging's rule, approved production's, which only alice may.
func TestDecideDecidesTheApprovalWhoseRuleItChecked(t *testing.T) {
	ctx := context.Background()
	project := "two-gates"
	cfg, err := config.Parse("cutover.yaml", []byte(fmt.Sprintf(twoGatesProject, project, 18081, 18091)))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "cutover.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	x := store.Execution{ID: "x-1", Project: project, Pipeline: "main", Trigger: TriggerPush, Branch: "main",
		Commit: "cccccccccccccccccccccccccccccccccccccccc", Status: store.ExecutionWaiting}
	if err := st.CreateExecution(ctx, x); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for i, stage := range []string{"deploy-staging", "deploy-production"} {
		at := now.Add(time.Duration(i) * time.Second)
		if err := st.RequestApproval(ctx, store.Approval{Execution: x.ID, Stage: stage, Action: "approve", Status: store.ApprovalPending,
			RequestedAt: at, Expires: at.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	bob := auth.Identity{Name: "bob", Role: auth.RoleApprover, Via: auth.ViaAPI}
	a, err := Decide(ctx, st, cfg, bob, x.ID, true, "staging ok")
	if err != nil {
		t.Fatal(err)
	}
	if a.Stage != "deploy-staging" {
		t.Errorf("bob's decision, checked under staging's rule, decided %s's approval", a.Stage)
	}
	if p, _ := st.StageApproval(ctx, x.ID, "deploy-production", "approve"); p.Status != store.ApprovalPending {
		t.Fatalf("production's approval is %s by %s, want pending (only alice may approve it)", p.Status, p.DecidedBy)
	}
}
