package loadgen

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestRefusesNonLoopback(t *testing.T) {
	for _, u := range []string{"http://10.0.0.1/", "http://172.17.0.2:80/", "http://example.com/"} {
		if _, err := Run(context.Background(), Options{URL: u, Duration: time.Second}); err == nil {
			t.Errorf("%s: want refusal", u)
		}
	}
}

func TestCountsFailuresStatusesAndHeaders(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%4 == 0 {
			w.Header().Set("X-Color", "green")
			w.WriteHeader(500)
			return
		}
		w.Header().Set("X-Color", "blue")
	}))
	defer srv.Close()
	res, err := Run(context.Background(), Options{URL: srv.URL, Concurrency: 4, Duration: 5 * time.Second, MaxRequests: 400, CountHeader: "X-Color"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 400 || res.Failed != 100 || res.Status[500] != 100 || res.Status[200] != 300 {
		t.Fatalf("got %v", res)
	}
	if res.Header["green"] != 100 || res.Header["blue"] != 300 {
		t.Fatalf("header counts %v", res.Header)
	}
	if res.P99 < res.P50 || res.P50 <= 0 {
		t.Fatalf("percentiles %v %v", res.P50, res.P99)
	}
}

func TestRateBoundsRequestCount(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	res, err := Run(context.Background(), Options{URL: srv.URL, Concurrency: 4, Rate: 100, Duration: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// 100 req/s for 0.5s schedules at most 51 requests, however fast the server is.
	if res.Requests > 51 || res.Requests == 0 {
		t.Fatalf("rate 100/s for 500ms sent %d requests", res.Requests)
	}
}

func TestTransportErrorsAreFailures(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	url := srv.URL
	srv.Close()
	res, err := Run(context.Background(), Options{URL: url, Concurrency: 2, Duration: 2 * time.Second, MaxRequests: 10})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed != 10 || len(res.Errors) == 0 {
		t.Fatalf("want 10 transport failures, got %v", res)
	}
}
