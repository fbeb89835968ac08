package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/cutoverdev/cutover/internal/release"
)

// newPublishStaticCmd publishes built files to a static site: the exported
// pipeline's publish action, the same code as `cutover deploy` on ECS.
func newPublishStaticCmd(g *globals) *cobra.Command {
	var o release.PublishSiteOptions
	cmd := &cobra.Command{
		Use:   "publish-static DIR",
		Short: "Publish built files to a static site's S3 bucket under releases/<digest>/ and point its CloudFront distribution at them (the exported pipeline's publish action)",
		Args:  exactArgs(1, "DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Dir = args[0]
			res, err := release.PublishSite(cmd.Context(), o, func(format string, a ...any) { fmt.Fprintf(g.stderr, format+"\n", a...) })
			return g.show(res, err, func(w io.Writer) {
				fmt.Fprintf(w, "%s: %d files, release %s in s3://%s/releases/%s/, served by distribution %s\n", res.Service, res.Files, res.Release[:12], res.Bucket, res.Release, res.Distribution)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Service, "service", "", "the static service's name (for messages)")
	f.StringVar(&o.Bucket, "bucket", "", "the site's S3 bucket")
	f.StringVar(&o.Distribution, "distribution", "", "the ID of the CloudFront distribution serving the bucket")
	f.StringVar(&o.Region, "region", "", "AWS region (default: AWS_REGION or the profile's)")
	f.StringVar(&o.Profile, "profile", "", "AWS shared config profile (default: the standard chain)")
	f.StringVar(&o.Endpoint, "endpoint", "", "AWS endpoint override, for moto or LocalStack")
	return cmd
}
