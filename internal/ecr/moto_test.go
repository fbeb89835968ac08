package ecr

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/smithy-go/middleware"
	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/cutoverdev/cutover/internal/testenv"
)

// motoECR returns a client of moto's ECR that records the operations it calls.
func motoECR(t *testing.T) (*ecr.Client, *[]string) {
	t.Helper()
	var ops []string
	record := func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("record", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			ops = append(ops, middleware.GetOperationName(ctx))
			return next.HandleInitialize(ctx, in)
		}), middleware.Before)
	}
	url := testenv.StartMoto(t)
	testenv.FakeAWSCredentials(t)
	cfg, err := awsconfig.LoadDefaultConfig(t.Context(), awsconfig.WithRegion("us-east-1"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.APIOptions = append(cfg.APIOptions, record)
	return ecr.NewFromConfig(cfg, func(o *ecr.Options) { o.BaseEndpoint = aws.String(url) }), &ops
}

func TestEnsureRepositoryMoto(t *testing.T) {
	api, ops := motoECR(t)
	c, err := New(api, Options{RepositoryPrefix: "team/", LifecycleKeep: 7, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	name := c.RepositoryName("bluemed", "backend")
	if name != "team/bluemed/backend" {
		t.Fatalf("RepositoryName = %q", name)
	}
	uri, err := c.EnsureRepository(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	d, err := api.DescribeRepositories(t.Context(), &ecr.DescribeRepositoriesInput{RepositoryNames: []string{name}})
	if err != nil {
		t.Fatal(err)
	}
	r := d.Repositories[0]
	if aws.ToString(r.RepositoryUri) != uri || uri == "" {
		t.Errorf("uri %q, DescribeRepositories says %q", uri, aws.ToString(r.RepositoryUri))
	}
	if r.ImageTagMutability != types.ImageTagMutabilityImmutable {
		t.Errorf("tag mutability %s, want IMMUTABLE", r.ImageTagMutability)
	}
	if r.ImageScanningConfiguration == nil || !r.ImageScanningConfiguration.ScanOnPush {
		t.Errorf("scan on push not set: %+v", r.ImageScanningConfiguration)
	}
	if r.EncryptionConfiguration == nil || r.EncryptionConfiguration.EncryptionType != types.EncryptionTypeAes256 {
		t.Errorf("encryption: %+v", r.EncryptionConfiguration)
	}
	p, err := api.GetLifecyclePolicy(t.Context(), &ecr.GetLifecyclePolicyInput{RepositoryName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	var policy struct {
		Rules []lifecycleRule `json:"rules"`
	}
	if err := json.Unmarshal([]byte(aws.ToString(p.LifecyclePolicyText)), &policy); err != nil {
		t.Fatal(err)
	}
	if len(policy.Rules) != 2 || policy.Rules[1].Selection.CountNumber != 7 || policy.Rules[0].Selection.TagStatus != "untagged" {
		t.Errorf("lifecycle policy: %s", aws.ToString(p.LifecyclePolicyText))
	}

	// Second call: only reads, and the repository is unchanged.
	*ops = nil
	uri2, err := c.EnsureRepository(t.Context(), name)
	if got := strings.Join(*ops, ","); got != "DescribeRepositories,GetLifecyclePolicy" {
		t.Errorf("second EnsureRepository called %s, want only reads", got)
	}
	if err != nil || uri2 != uri {
		t.Fatalf("second EnsureRepository = %q, %v", uri2, err)
	}
	d2, err := api.DescribeRepositories(t.Context(), &ecr.DescribeRepositoriesInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(d2.Repositories) != 1 || !aws.ToTime(d2.Repositories[0].CreatedAt).Equal(aws.ToTime(r.CreatedAt)) {
		t.Errorf("second call changed the repositories: %+v", d2.Repositories)
	}
}

func TestLoginMoto(t *testing.T) {
	api, _ := motoECR(t)
	c, err := New(api, Options{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	registry, auth, err := c.Login(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if registry == "" || registry[0] == 'h' {
		t.Errorf("registry %q: want a host without scheme", registry)
	}
	cfg, err := auth.Authorization()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Username != "AWS" || cfg.Password == "" {
		t.Errorf("credentials %+v: want user AWS and a password", *cfg)
	}
	var _ authn.Authenticator = auth
}
