package deploy

import "testing"

func TestNextBlueGreenHappyPath(t *testing.T) {
	want := []Phase{PhaseBeforeInstall, PhaseInstall, PhaseAfterInstall, PhaseAllowTestTraffic, PhaseAfterAllowTestTraffic,
		PhaseBeforeAllowTraffic, PhaseReadyWait, PhaseShifting, PhaseAfterAllowTraffic, PhaseBaking, PhaseTerminationWait,
		PhaseTerminating, PhaseSucceeded}
	p := PhasePending
	for _, w := range want {
		p = Next(p, Done, true)
		if p != w {
			t.Fatalf("got %s, want %s", p, w)
		}
	}
	if Next(PhaseSucceeded, Failed, true) != PhaseSucceeded {
		t.Fatal("terminal phases must stay")
	}
}

func TestNextTable(t *testing.T) {
	cases := []struct {
		from Phase
		o    Outcome
		auto bool
		want Phase
	}{
		{PhaseInstall, Failed, true, PhaseRollingBack},
		{PhaseInstall, Failed, false, PhaseFailed},
		{PhaseAfterAllowTestTraffic, Failed, true, PhaseRollingBack},
		{PhaseShifting, Alarmed, true, PhaseRollingBack},
		{PhaseBaking, Alarmed, true, PhaseRollingBack},
		{PhaseBaking, Stopped, true, PhaseRollingBack},
		{PhaseTerminationWait, Rollback, false, PhaseRollingBack}, // a requested rollback needs no auto_rollback
		{PhaseTerminationWait, Done, true, PhaseTerminating},
		{PhaseTerminating, Failed, true, PhaseFailed},
		{PhaseTerminating, Done, true, PhaseSucceeded},
		{PhaseRollingBack, Done, true, PhaseRolledBack},
		{PhaseRollingBack, Failed, true, PhaseFailed},
		{PhaseRolling, Done, true, PhaseSucceeded},
		{PhaseRolling, Failed, true, PhaseRollingBack},
		{PhaseRolledBack, Done, true, PhaseRolledBack},
	}
	for _, c := range cases {
		if got := Next(c.from, c.o, c.auto); got != c.want {
			t.Errorf("Next(%s, %s, %v) = %s, want %s", c.from, c.o, c.auto, got, c.want)
		}
	}
}

func TestPhaseNamesRoundTrip(t *testing.T) {
	for p := PhasePending; p <= PhaseFailed; p++ {
		q, err := ParsePhase(p.String())
		if err != nil || q != p {
			t.Fatalf("%s: %v %v", p, q, err)
		}
	}
	if _, err := ParsePhase("Nope"); err == nil {
		t.Fatal("want error")
	}
	if Status(PhaseRolledBack, Stopped) != "stopped" || Status(PhaseRolledBack, Alarmed) != "rolled_back" || Status(PhaseShifting, Done) != "in_progress" {
		t.Fatal("status mapping")
	}
}
