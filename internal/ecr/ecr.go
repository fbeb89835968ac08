// Package ecr gets images into Amazon ECR for ecs environments: it creates
// each service's repository with immutable tags, scan on push and a
// lifecycle policy, pushes local Docker images with go-containerregistry
// using the ECR authorization token, and gates the build on the scan.
package ecr

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/daemon"
)

// API is the part of the ECR client this package uses; *ecr.Client implements it.
type API interface {
	DescribeRepositories(context.Context, *ecr.DescribeRepositoriesInput, ...func(*ecr.Options)) (*ecr.DescribeRepositoriesOutput, error)
	CreateRepository(context.Context, *ecr.CreateRepositoryInput, ...func(*ecr.Options)) (*ecr.CreateRepositoryOutput, error)
	GetLifecyclePolicy(context.Context, *ecr.GetLifecyclePolicyInput, ...func(*ecr.Options)) (*ecr.GetLifecyclePolicyOutput, error)
	PutLifecyclePolicy(context.Context, *ecr.PutLifecyclePolicyInput, ...func(*ecr.Options)) (*ecr.PutLifecyclePolicyOutput, error)
	GetAuthorizationToken(context.Context, *ecr.GetAuthorizationTokenInput, ...func(*ecr.Options)) (*ecr.GetAuthorizationTokenOutput, error)
	DescribeImageScanFindings(context.Context, *ecr.DescribeImageScanFindingsInput, ...func(*ecr.Options)) (*ecr.DescribeImageScanFindingsOutput, error)
}

// Options are the ECR settings of cutover.yaml plus what the caller wires in.
type Options struct {
	// RepositoryPrefix is put before "project/service" in repository names.
	RepositoryPrefix string
	// FailOnSeverity is the lowest scan finding severity that fails the
	// build (default CRITICAL).
	FailOnSeverity string
	// LifecycleKeep is how many images a repository keeps (default 30).
	LifecycleKeep int
	// KMSKey, when set, encrypts new repositories with this KMS key instead of AES256.
	KMSKey string

	// Docker reads local images; the docker runtime's EngineClient fits.
	Docker daemon.Client
	// Authenticator overrides the ECR token for pushes (tests use a local registry).
	Authenticator authn.Authenticator

	// PollInterval and MaxPollDelay bound the scan polling backoff
	// (defaults 2s and 15s); ScanTimeout bounds the whole wait (default 15m).
	PollInterval, MaxPollDelay, ScanTimeout time.Duration
	Log                                     *slog.Logger
}

// Client creates repositories, pushes and checks scans.
type Client struct {
	api API
	o   Options
}

// New returns a Client over api with defaults filled in; it rejects an
// unknown FailOnSeverity.
func New(api API, o Options) (*Client, error) {
	if o.FailOnSeverity == "" {
		o.FailOnSeverity = string(types.FindingSeverityCritical)
	}
	if _, err := ParseSeverity(o.FailOnSeverity); err != nil {
		return nil, err
	}
	if o.LifecycleKeep <= 0 {
		o.LifecycleKeep = 30
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 2 * time.Second
	}
	if o.MaxPollDelay <= 0 {
		o.MaxPollDelay = 15 * time.Second
	}
	if o.ScanTimeout <= 0 {
		o.ScanTimeout = 15 * time.Minute
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return &Client{api: api, o: o}, nil
}

// RepositoryName is the repository of one service: prefix + project/service.
func (c *Client) RepositoryName(project, service string) string {
	return c.o.RepositoryPrefix + project + "/" + service
}

// FailAt is the configured severity threshold.
func (c *Client) FailAt() Severity {
	s, _ := ParseSeverity(c.o.FailOnSeverity)
	return s
}

// EnsureRepository creates the repository when missing (immutable tags,
// scan on push, encryption) and sets its lifecycle policy when it differs,
// so a second call changes nothing. It returns the repository URI.
func (c *Client) EnsureRepository(ctx context.Context, name string) (string, error) {
	var uri string
	d, err := c.api.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{RepositoryNames: []string{name}})
	var nf *types.RepositoryNotFoundException
	switch {
	case errors.As(err, &nf):
		enc := &types.EncryptionConfiguration{EncryptionType: types.EncryptionTypeAes256}
		if c.o.KMSKey != "" {
			enc = &types.EncryptionConfiguration{EncryptionType: types.EncryptionTypeKms, KmsKey: aws.String(c.o.KMSKey)}
		}
		out, err := c.api.CreateRepository(ctx, &ecr.CreateRepositoryInput{
			RepositoryName:             aws.String(name),
			ImageTagMutability:         types.ImageTagMutabilityImmutable,
			ImageScanningConfiguration: &types.ImageScanningConfiguration{ScanOnPush: true},
			EncryptionConfiguration:    enc,
			Tags:                       []types.Tag{{Key: aws.String("managed-by"), Value: aws.String("cutover")}},
		})
		if err != nil {
			return "", fmt.Errorf("ecr: cannot create repository %s: %w", name, err)
		}
		uri = aws.ToString(out.Repository.RepositoryUri)
		c.o.Log.Info("created ECR repository", "repository", name, "uri", uri)
	case err != nil:
		return "", fmt.Errorf("ecr: cannot read repository %s: %w", name, err)
	case len(d.Repositories) == 0:
		return "", fmt.Errorf("ecr: repository %s was not returned by DescribeRepositories", name)
	default:
		r := d.Repositories[0]
		uri = aws.ToString(r.RepositoryUri)
		if r.ImageTagMutability == types.ImageTagMutabilityMutable {
			// An existing repository is the team's: warn, do not change it.
			c.o.Log.Warn("ECR repository has mutable tags; cutover deploys by digest, but consider IMMUTABLE", "repository", name)
		}
	}
	return uri, c.ensureLifecycle(ctx, name)
}

func (c *Client) ensureLifecycle(ctx context.Context, name string) error {
	want := LifecyclePolicy(c.o.LifecycleKeep)
	got, err := c.api.GetLifecyclePolicy(ctx, &ecr.GetLifecyclePolicyInput{RepositoryName: aws.String(name)})
	var nf *types.LifecyclePolicyNotFoundException
	if err != nil && !errors.As(err, &nf) {
		return fmt.Errorf("ecr: cannot read lifecycle policy of %s: %w", name, err)
	}
	if err == nil && sameJSON(aws.ToString(got.LifecyclePolicyText), want) {
		return nil
	}
	if _, err := c.api.PutLifecyclePolicy(ctx, &ecr.PutLifecyclePolicyInput{
		RepositoryName: aws.String(name), LifecyclePolicyText: aws.String(want),
	}); err != nil {
		return fmt.Errorf("ecr: cannot set lifecycle policy of %s: %w", name, err)
	}
	return nil
}

// Login exchanges AWS credentials for a registry token (valid 12 hours)
// and returns the registry host and a basic authenticator for it.
func (c *Client) Login(ctx context.Context) (string, authn.Authenticator, error) {
	out, err := c.api.GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		return "", nil, fmt.Errorf("ecr: cannot get an authorization token: %w", err)
	}
	if len(out.AuthorizationData) == 0 {
		return "", nil, errors.New("ecr: GetAuthorizationToken returned no authorization data")
	}
	a := out.AuthorizationData[0]
	raw, err := base64.StdEncoding.DecodeString(aws.ToString(a.AuthorizationToken))
	if err != nil {
		return "", nil, fmt.Errorf("ecr: authorization token is not base64: %v", err)
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return "", nil, errors.New("ecr: authorization token is not user:password")
	}
	registry := aws.ToString(a.ProxyEndpoint)
	registry = strings.TrimPrefix(strings.TrimPrefix(registry, "https://"), "http://")
	return registry, &authn.Basic{Username: user, Password: pass}, nil
}
