package ecr

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
)

// ClientOptions locate the AWS account: empty fields fall back to the
// standard chain (env, shared config, SSO, web identity, instance roles).
type ClientOptions struct {
	Region, Profile string
	// Endpoint overrides the ECR endpoint, for testing (moto).
	Endpoint string
}

// NewAPI loads AWS configuration and returns an ECR client, with plain
// errors for a missing region or missing credentials.
func NewAPI(ctx context.Context, o ClientOptions) (*ecr.Client, error) {
	loaders := []func(*awsconfig.LoadOptions) error{awsconfig.WithRetryMaxAttempts(10)}
	if o.Region != "" {
		loaders = append(loaders, awsconfig.WithRegion(o.Region))
	}
	if o.Profile != "" {
		loaders = append(loaders, awsconfig.WithSharedConfigProfile(o.Profile))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, loaders...)
	if err != nil {
		return nil, fmt.Errorf("aws: cannot load configuration: %v", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("aws: no region: set environments.<env>.ecs.region in cutover.yaml or AWS_REGION")
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := cfg.Credentials.Retrieve(cctx); err != nil {
		return nil, errors.New("aws: no credentials found: set AWS_PROFILE (and run `aws sso login` for SSO) or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	return ecr.NewFromConfig(cfg, func(opt *ecr.Options) {
		if o.Endpoint != "" {
			opt.BaseEndpoint = aws.String(o.Endpoint)
		}
	}), nil
}
