package stats

import (
	"math"
	"testing"
)

func TestQuantileInterpolates(t *testing.T) {
	b := []Bucket{{UpperBound: 0.1, Count: 10}, {UpperBound: 0.2, Count: 30}, {UpperBound: 0.5, Count: 40}}
	for _, c := range []struct {
		q     float64
		count uint64
		want  float64
	}{
		{0.5, 40, 0.15}, // rank 20: halfway through (0.1, 0.2]
		{0.25, 40, 0.1}, // rank 10: top of the first bucket
		{0.1, 40, 0.04}, // rank 4 in [0, 0.1]
		{0.99, 50, 0.5}, // rank 49.5 beyond the last bound
		{0.5, 0, 0},     // no observations
		{1, 40, 0.5},    // the last observation
	} {
		if got := Quantile(c.q, b, c.count); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("Quantile(%v, count %d) = %v, want %v", c.q, c.count, got, c.want)
		}
	}
}

// With the latencies' sum and sum of squares per bucket, a quantile lands
// where the latencies are, not spread over the whole bucket.
func TestQuantileUsesBucketMoments(t *testing.T) {
	// 100 answers of exactly 800 ms in the (0.75, 1] bucket: Prometheus'
	// interpolation reads p95 as 0.9875; the moments say 0.8.
	point := []Bucket{{UpperBound: 0.75}, {UpperBound: 1, Count: 100, Sum: 80, SumSq: 64}}
	if got := Quantile(0.95, point, 100); math.Abs(got-0.8) > 1e-9 {
		t.Errorf("p95 of 800 ms answers = %v, want 0.8", got)
	}
	if got := Quantile(0.95, []Bucket{{UpperBound: 0.75}, {UpperBound: 1, Count: 100}}, 100); math.Abs(got-0.9875) > 1e-9 {
		t.Errorf("without moments p95 = %v, want Prometheus' 0.9875", got)
	}
	// Latencies spread evenly over 0.8..0.9 s: p95 near 0.895.
	var sum, sq float64
	for i := range 1000 {
		v := 0.8 + 0.1*(float64(i)+0.5)/1000
		sum, sq = sum+v, sq+v*v
	}
	spread := []Bucket{{UpperBound: 0.75}, {UpperBound: 1, Count: 1000, Sum: sum, SumSq: sq}}
	if got := Quantile(0.95, spread, 1000); math.Abs(got-0.895) > 0.001 {
		t.Errorf("p95 of an even 0.8..0.9 s spread = %v, want ~0.895", got)
	}
	// Windows subtract the moments too; groups add them.
	w := spread[1].Minus(point[1])
	if w.Count != 900 || math.Abs(w.Sum-(sum-80)) > 1e-9 || w.Plus(point[1]).Count != 1000 {
		t.Errorf("Minus/Plus %+v", w)
	}
}

func TestSubWindowsCounters(t *testing.T) {
	prev := GroupStats{Requests: 10, Codes: map[string]uint64{"2xx": 10}, ConnectFailed: 2, LatencyCount: 10, Buckets: []Bucket{{UpperBound: 0.1, Count: 10}, {UpperBound: 1, Count: 10}}}
	cur := GroupStats{Requests: 30, Codes: map[string]uint64{"2xx": 15, "5xx": 5}, ConnectFailed: 7, LatencyCount: 30, Healthy: 2, Buckets: []Bucket{{UpperBound: 0.1, Count: 10}, {UpperBound: 1, Count: 30}}}
	w := cur.Sub(prev)
	if w.Requests != 20 || w.Codes["5xx"] != 5 || w.Codes["2xx"] != 5 || w.ConnectFailed != 5 || w.Healthy != 2 {
		t.Fatalf("window %+v", w)
	}
	if w.P50 <= 0.1 || w.P50 > 1 {
		t.Fatalf("window p50 %v: all window observations were in (0.1, 1]", w.P50)
	}
	// 5 answered 5xx and 5 could not connect, of 25 attempts.
	if w.ErrorRate() != 0.4 {
		t.Fatalf("error rate %v", w.ErrorRate())
	}
	// A restart between the snapshots: the later one is the window.
	if r := prev.Sub(cur); r.Requests != prev.Requests {
		t.Fatalf("after a counter reset want the later snapshot, got %+v", r)
	}
}
