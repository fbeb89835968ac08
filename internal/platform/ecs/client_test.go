package ecs

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
)

// TestNoCredentials: with nothing in the standard chain, NewClients fails in
// one line that says how to log in.
func TestNoCredentials(t *testing.T) {
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	_, err := NewClients(context.Background(), ClientOptions{Region: "eu-west-1"})
	if err == nil || !strings.Contains(err.Error(), "no credentials found") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err = %v", err)
	}
}

func TestOptionsChecked(t *testing.T) {
	if _, err := New(Clients{}, Options{Services: map[string]Service{"a": {ECSService: "a", Port: 1}}}); err == nil || !strings.Contains(err.Error(), "no cluster") {
		t.Errorf("no cluster: %v", err)
	}
	if _, err := New(Clients{}, Options{Cluster: "c", Services: map[string]Service{"a": {Port: 1}}}); err == nil || !strings.Contains(err.Error(), "service a has no ECS service name") {
		t.Errorf("no service name: %v", err)
	}
	p, err := New(Clients{}, Options{Cluster: "c", Services: map[string]Service{"a": {ECSService: "a", Port: 1, Listener: "l"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Driven(DrivenOptions{Engine: EngineCodeDeploy, Application: "app"}); err == nil || !strings.Contains(err.Error(), "service a has no CodeDeploy deployment group") {
		t.Errorf("CodeDeploy without a deployment group: %v", err)
	}
	if _, err := p.Driven(DrivenOptions{Engine: "kubernetes"}); err == nil || !strings.Contains(err.Error(), `unknown deployment engine "kubernetes"`) {
		t.Errorf("unknown engine: %v", err)
	}
}

// TestThrottlingRetried: a throttled call is retried by the SDK's retryer
// with backoff and succeeds; one throttled past the attempts is explained.
func TestThrottlingRetried(t *testing.T) {
	for _, c := range []struct {
		throttled, attempts int
		wantErr             string
	}{
		{throttled: 2, attempts: 5},
		{throttled: 100, attempts: 2, wantErr: "ecs:DescribeServices on service backend in cluster c still throttled"},
	} {
		var calls atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			if int(calls.Add(1)) <= c.throttled {
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, `{"__type":"ThrottlingException","message":"Rate exceeded"}`)
				return
			}
			io.WriteString(w, `{"services":[{"serviceName":"backend","status":"ACTIVE","desiredCount":2}]}`)
		}))
		t.Cleanup(srv.Close)
		t.Setenv("AWS_ACCESS_KEY_ID", "testing")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
		t.Setenv("AWS_CONFIG_FILE", os.DevNull)
		t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
		cl, err := NewClients(context.Background(), ClientOptions{Region: "us-east-1", Endpoint: srv.URL, MaxAttempts: c.attempts})
		if err != nil {
			t.Fatal(err)
		}
		p, err := New(cl, Options{Cluster: "c", Services: map[string]Service{"backend": {ECSService: "backend", Port: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		svc, err := p.describe(context.Background(), "backend")
		switch {
		case c.wantErr == "" && (err != nil || svc.DesiredCount != 2 || calls.Load() != 3):
			t.Errorf("after %d throttled calls: %v, %d calls", c.throttled, err, calls.Load())
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("throttled past %d attempts: %v", c.attempts, err)
		}
	}
}
