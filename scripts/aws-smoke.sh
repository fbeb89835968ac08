#!/usr/bin/env bash
# aws-smoke: deploy examples/bluemed to a THROWAWAY AWS account with the
# templates of `cutover export cloudformation`, exercise a blue/green release,
# a rollback and a bad release, then delete everything it created.
#
# Never run in CI. It creates billable resources (ALBs, Fargate tasks, VPC
# endpoints, KMS keys) for roughly an hour; the cleanup runs on exit, also on
# failure or Ctrl-C, but check the console afterwards.
#
# Needs: aws CLI v2 with credentials for the account (AWS_PROFILE or keys),
# AWS_REGION, Docker, Go, jq, and an ACM certificate in that region for two
# domains you control:
#   CERTIFICATE_ARN=arn:aws:acm:...  PRODUCTION_DOMAIN=bluemed.example.com \
#   STAGING_DOMAIN=staging.bluemed.example.com  make aws-smoke
# (DNS for the domains is only needed by the pipeline's Verify, which this
# script does not run; cutover deploy talks to the AWS APIs only.)
set -euo pipefail

: "${AWS_REGION:?set AWS_REGION}"
: "${CERTIFICATE_ARN:?set CERTIFICATE_ARN (an ACM certificate in AWS_REGION)}"
: "${PRODUCTION_DOMAIN:?set PRODUCTION_DOMAIN}"
: "${STAGING_DOMAIN:?set STAGING_DOMAIN}"
for tool in aws docker go jq; do command -v "$tool" >/dev/null || { echo "aws-smoke: $tool is not installed" >&2; exit 1; }; done

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
export CUTOVER_HOME="$work/home"
project=bluemed
account=$(aws sts get-caller-identity --query Account --output text)
registry="$account.dkr.ecr.$AWS_REGION.amazonaws.com"
echo "aws-smoke: account $account, region $AWS_REGION, work directory $work"
read -r -p "Deploy $project to account $account and delete it afterwards? [y/N] " ok
[ "$ok" = y ] || exit 1

step() { echo; echo "=== $*"; }

# empty_buckets empties the S3 buckets of a stack, every version included:
# CloudFormation deletes only empty buckets.
empty_buckets() {
	for b in $(aws cloudformation list-stack-resources --stack-name "$1" --query "StackResourceSummaries[?ResourceType=='AWS::S3::Bucket'].PhysicalResourceId" --output text 2>/dev/null); do
		while :; do
			v=$(aws s3api list-object-versions --bucket "$b" --max-items 500 --query '{Objects: [Versions, DeleteMarkers][][].{Key: Key, VersionId: VersionId}}' --output json)
			[ "$(jq '.Objects | length' <<<"$v")" -gt 0 ] || break
			aws s3api delete-objects --bucket "$b" --delete "$v" >/dev/null
		done
	done
}

cleanup() {
	set +e
	step "cleanup: deleting every stack and repository this script created"
	for env in production staging; do
		lb=$(aws cloudformation describe-stacks --stack-name "$project-app-$env" --query "Stacks[0].Outputs[?OutputKey=='$(tr '[:lower:]' '[:upper:]' <<<"${env:0:1}")${env:1}LoadBalancerArn'].OutputValue" --output text 2>/dev/null)
		[ -n "$lb" ] && [ "$lb" != None ] && aws elbv2 modify-load-balancer-attributes --load-balancer-arn "$lb" --attributes Key=deletion_protection.enabled,Value=false >/dev/null
	done
	for stack in pipeline app-production app-staging; do
		empty_buckets "$project-$stack"
		aws cloudformation delete-stack --stack-name "$project-$stack"
		aws cloudformation wait stack-delete-complete --stack-name "$project-$stack"
	done
	for svc in backend frontend; do aws ecr delete-repository --repository-name "$project/$svc" --force >/dev/null; done
	aws cloudformation delete-stack --stack-name "$project-shared"
	aws cloudformation wait stack-delete-complete --stack-name "$project-shared"
	# A deleted secret keeps its name for its recovery window: free it for the next run.
	aws secretsmanager delete-secret --secret-id "cutover/$project/notifications" --force-delete-without-recovery >/dev/null 2>&1
	aws cloudformation list-stacks --stack-status-filter DELETE_FAILED --query "StackSummaries[?starts_with(StackName, '$project-')].StackName" --output text
	echo "aws-smoke: cleanup done (KMS keys are scheduled for deletion by AWS after its waiting period)"
}
trap cleanup EXIT

step "build cutover and copy the example"
(cd "$root" && CGO_ENABLED=0 go build -o "$work/cutover" ./cmd/cutover)
cutover="$work/cutover"
cp -r "$root/examples/bluemed" "$work/bluemed"
cd "$work/bluemed"
# The example's environments, on ECS: everything but the region comes from the stacks' outputs.
awk -v region="$AWS_REGION" '
	{ print }
	/^  staging:$/    { print "    platform: ecs"; print "    ecs: { region: " region ", stack: bluemed-app-staging }" }
	/^  production:$/ { print "    platform: ecs"; print "    ecs: { region: " region ", stack: bluemed-app-production }" }
' cutover.yaml >cutover.yaml.ecs && mv cutover.yaml.ecs cutover.yaml
"$cutover" validate

step "export the templates"
"$cutover" export cloudformation --dir cf

step "shared stack (VPC, endpoints, ECR, KMS)"
aws cloudformation deploy --stack-name "$project-shared" --template-file cf/shared.yaml --capabilities CAPABILITY_IAM

step "bootstrap: the first images, tagged initial (the app stacks' task definitions run them)"
aws ecr get-login-password | docker login --username AWS --password-stdin "$registry"
for svc in backend frontend; do
	# The Dockerfiles copy the static binary build.commands make.
	(cd "$svc" && CGO_ENABLED=0 go build -trimpath -o "bin/$svc" .)
	docker build -t "$registry/$project/$svc:initial" "$svc"
	docker push "$registry/$project/$svc:initial"
done

step "app stacks"
for env in staging production; do
	domain=$STAGING_DOMAIN; [ "$env" = production ] && domain=$PRODUCTION_DOMAIN
	aws cloudformation deploy --stack-name "$project-app-$env" --template-file "cf/app-$env.yaml" --capabilities CAPABILITY_IAM \
		--parameter-overrides "CertificateArn=$CERTIFICATE_ARN" "DomainName=$domain"
done

step "pipeline stack (CodeDeploy application and deployment groups; its source connection stays pending)"
sum=$(sha256sum "$cutover" | cut -d' ' -f1)
aws cloudformation deploy --stack-name "$project-pipeline" --template-file cf/pipeline.yaml --capabilities CAPABILITY_IAM \
	--parameter-overrides RepositoryId=example/bluemed CutoverDownloadUrl=https://example.invalid/cutover "CutoverSha256=$sum"

step "release 1: build, push to ECR, CodeDeploy blue/green (linear 10%/min, 5 min termination wait: about 16 minutes)"
"$cutover" deploy production
"$cutover" status production
"$cutover" logs production backend --since 30m

step "release 2: a changed environment variable"
sed -i 's|CORS_ORIGIN: "http://127.0.0.1:8080"|CORS_ORIGIN: "https://'"$PRODUCTION_DOMAIN"'"|' cutover.yaml
"$cutover" deploy production

step "rollback: redeploy release 1"
"$cutover" rollback production
"$cutover" history production

step "bad release: the frontend image as the backend (nothing listens on 3001): CodeDeploy must roll it back"
frontend=$("$cutover" history production --output json | jq -r '.revisions[0].services.frontend.image // empty')
if [ -z "$frontend" ]; then echo "aws-smoke: no frontend image in the history" >&2; exit 1; fi
if "$cutover" deploy production --image "backend=$frontend" --image "frontend=$frontend" --timeout 5m; then
	echo "aws-smoke: FAILED: the bad release was reported as a success" >&2; exit 1
fi
"$cutover" history production
"$cutover" status production
echo "aws-smoke: passed"
