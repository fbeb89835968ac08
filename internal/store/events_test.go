package store

import (
	"encoding/json"
	"testing"
)

func TestEvents(t *testing.T) {
	s, ctx := openTest(t), t.Context()
	for i, env := range []string{"prod", "staging", "prod", "prod"} {
		e := Event{Project: "bluemed", Environment: env, Kind: "deploy", Message: "step", Data: json.RawMessage(`{"i":1}`)}
		seq, err := s.AppendEvent(ctx, e)
		if err != nil || seq != int64(i+1) {
			t.Fatalf("AppendEvent #%d = %d, %v", i, seq, err)
		}
	}
	evs, err := s.ListEvents(ctx, EventFilter{Project: "bluemed", Environment: "prod", AfterSeq: 1, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Seq != 3 || string(evs[0].Data) != `{"i":1}` || evs[0].Time.IsZero() {
		t.Fatalf("ListEvents = %+v, want the event with seq 3", evs)
	}
	if evs, _ := s.ListEvents(ctx, EventFilter{}); len(evs) != 4 {
		t.Fatalf("all events: %d, want 4", len(evs))
	}
	if _, err := s.AppendEvent(ctx, Event{Message: "no kind"}); err == nil {
		t.Fatal("event without kind accepted")
	}
}
