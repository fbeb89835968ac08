#!/usr/bin/env bash
# aws-smoke: deploy examples/bluemed to a THROWAWAY AWS account with the
# templates of `cutover export cloudformation`, release it (staging rolling,
# production CodeDeploy blue/green), roll it back, try a bad release that
# must be rolled back, then delete everything this run created.
#
#   scripts/aws-smoke.sh --confirm-account ACCOUNT_ID [--until stacks]
#   AWS_SMOKE_CONFIRM_ACCOUNT=ACCOUNT_ID make aws-smoke
#
# Never run in CI. It creates billable resources (ALBs, Fargate tasks, VPC
# endpoints, KMS keys) for roughly an hour.
#
# Safety:
# - It refuses to run unless --confirm-account (or AWS_SMOKE_CONFIRM_ACCOUNT)
#   names the account the credentials are for.
# - It refuses to start when any stack, repository or secret it would create
#   already exists, and it deletes only the stacks it created (each tagged
#   cutover-smoke-run=<this run>) and what they own (their ECR repositories,
#   notifications secret, buckets: those they created, never one whose
#   creation failed because one of that name was there). Cleanup runs on every exit: success,
#   failure, Ctrl-C, SIGTERM. Check the console afterwards all the same.
# - It prints no secret: no `set -x`; the ECR login token goes from the aws
#   CLI to docker on a pipe and into a Docker config in the run's temporary
#   directory, which cleanup deletes.
#
# Needs: a Linux x86_64 machine (cutover deploy builds the images for the
# machine it runs on; the task definitions are X86_64), aws CLI (v2, or v1
# with botocore >= 1.31), credentials for the account (AWS_PROFILE, SSO or
# keys), AWS_REGION, Go, jq, Docker (not with --until stacks), and an ACM
# certificate in AWS_REGION that covers both domains:
#   CERTIFICATE_ARN=arn:aws:acm:...  PRODUCTION_DOMAIN=bluemed.example.com \
#   STAGING_DOMAIN=staging.bluemed.example.com
# (DNS for the domains is only needed by the pipeline's Verify and canaries,
# which this script does not wait for; cutover deploy talks to the AWS APIs.)
#
# --until stacks stops after the stacks (shared, the first images, app,
# pipeline) and the checks of the bootstrap (each service's task definition
# runs its repository's "initial" image, which exists), then cleans up.
# With AWS_ENDPOINT_URL set (moto server: the aws CLI and cutover both honour
# it) only --until stacks runs: moto runs no ECS task and no CodeDeploy
# deployment and serves no registry, so the first images are registered with
# `aws ecr put-image` instead of docker push. CUTOVER may name a cutover
# binary to use instead of building one.
set -euo pipefail

usage() { echo "usage: scripts/aws-smoke.sh --confirm-account ACCOUNT_ID [--until stacks]" >&2; exit 2; }
confirm=${AWS_SMOKE_CONFIRM_ACCOUNT:-}
until=all
while [ $# -gt 0 ]; do
	case $1 in
	--confirm-account) [ $# -ge 2 ] || usage; confirm=$2; shift 2 ;;
	--until) [ $# -ge 2 ] || usage; until=$2; shift 2 ;;
	*) usage ;;
	esac
done
case $until in all | stacks) ;; *) echo "aws-smoke: --until $until: the only step to stop after is stacks" >&2; exit 2 ;; esac

: "${AWS_REGION:?set AWS_REGION}"
: "${CERTIFICATE_ARN:?set CERTIFICATE_ARN (an ACM certificate in AWS_REGION for both domains)}"
: "${PRODUCTION_DOMAIN:?set PRODUCTION_DOMAIN}"
: "${STAGING_DOMAIN:?set STAGING_DOMAIN}"
export AWS_REGION AWS_DEFAULT_REGION=$AWS_REGION AWS_PAGER=""
endpoint=${AWS_ENDPOINT_URL:-}
if [ -n "$endpoint" ] && [ "$until" != stacks ]; then
	echo "aws-smoke: AWS_ENDPOINT_URL is set ($endpoint): an endpoint such as moto runs no ECS task, no CodeDeploy deployment and no registry; add --until stacks" >&2
	exit 2
fi
# The task definitions run on X86_64 Fargate, and cutover deploy builds the
# images with this machine's engine, for this machine's architecture.
if [ "$until" != stacks ] && [ "$(uname -s)/$(uname -m)" != Linux/x86_64 ]; then
	echo "aws-smoke: cutover deploy builds linux/amd64 images only on a Linux x86_64 machine (this is $(uname -s)/$(uname -m)); Fargate would fail them with exec format error. Run it there, or use --until stacks" >&2
	exit 2
fi
tools=(aws go jq)
[ "$until" = stacks ] || tools+=(docker)
for tool in "${tools[@]}"; do command -v "$tool" >/dev/null || { echo "aws-smoke: $tool is not installed" >&2; exit 1; }; done

project=bluemed
stacks=("$project-shared" "$project-app-staging" "$project-app-production" "$project-pipeline")
repos=("$project/backend" "$project/frontend")
secret="cutover/$project/notifications"
account=$(aws sts get-caller-identity --query Account --output text)
if [ -z "$confirm" ]; then
	echo "aws-smoke: this creates and then deletes billable resources in account $account ($AWS_REGION)${endpoint:+ at $endpoint}; run again with --confirm-account $account (or AWS_SMOKE_CONFIRM_ACCOUNT=$account) to go ahead" >&2
	exit 1
fi
if [ "$confirm" != "$account" ]; then
	echo "aws-smoke: --confirm-account $confirm, but the credentials are for account $account: nothing done" >&2
	exit 1
fi

# exists WHAT NOT_FOUND COMMAND... says whether COMMAND finds WHAT: false
# only when AWS answers NOT_FOUND (its error code or message); any other
# failure (access denied, throttled, unreachable) stops the run, since
# "could not look" is not "not there".
exists() {
	local what=$1 notfound=$2 err
	shift 2
	if err=$("$@" 2>&1 >/dev/null); then
		return 0
	fi
	if grep -q -- "$notfound" <<<"$err"; then
		return 1
	fi
	echo "aws-smoke: cannot tell whether $what exists: $err" >&2
	exit 1
}

# Refuse to start next to anything of the same name: cleanup must never
# delete what this run did not create.
for s in "${stacks[@]}"; do
	if exists "stack $s" "does not exist" aws cloudformation describe-stacks --stack-name "$s"; then
		echo "aws-smoke: stack $s already exists in account $account: this script deletes only what it creates; delete it or use another account" >&2
		exit 1
	fi
done
for r in "${repos[@]}"; do
	if exists "ECR repository $r" RepositoryNotFoundException aws ecr describe-repositories --repository-names "$r"; then
		echo "aws-smoke: ECR repository $r already exists in account $account; delete it or use another account" >&2
		exit 1
	fi
done
if exists "secret $secret" ResourceNotFoundException aws secretsmanager describe-secret --secret-id "$secret"; then
	echo "aws-smoke: secret $secret already exists (perhaps scheduled for deletion) in account $account; delete it with --force-delete-without-recovery or use another account" >&2
	exit 1
fi

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
run="$(date -u +%Y%m%d%H%M%S)-$$"
export CUTOVER_HOME="$work/home"
export DOCKER_CONFIG="$work/docker" # the ECR login token lives here, and goes with cleanup
registry="$account.dkr.ecr.$AWS_REGION.amazonaws.com"
created=()       # the stacks this run asked CloudFormation to create, in order
created_bucket="" # the templates' bucket, once this run created it
echo "aws-smoke: run $run, account $account, region $AWS_REGION${endpoint:+, endpoint $endpoint}, until $until, work directory $work"

step() { echo; echo "=== $*"; }

# resources prints the physical IDs of a stack's resources of one type that
# the stack created: not one whose creation failed (CREATE_FAILED: a
# repository, bucket or secret of that name existed already, someone
# else's, perhaps created after the checks above or missed by a check that
# could not read it), nor one deleted already.
resources() {
	aws cloudformation list-stack-resources --stack-name "$1" --output json 2>/dev/null |
		jq -r --arg type "$2" '.StackResourceSummaries[] | select(.ResourceType == $type and (.ResourceStatus |
			IN("CREATE_COMPLETE", "UPDATE_IN_PROGRESS", "UPDATE_COMPLETE", "UPDATE_FAILED", "UPDATE_ROLLBACK_IN_PROGRESS",
				"UPDATE_ROLLBACK_COMPLETE", "UPDATE_ROLLBACK_FAILED", "DELETE_IN_PROGRESS", "DELETE_FAILED"))) | .PhysicalResourceId // empty' || true
}

# ours says whether stack $1 exists and carries this run's tag.
ours() {
	[ "$(aws cloudformation describe-stacks --stack-name "$1" --query "Stacks[0].Tags[?Key=='cutover-smoke-run'].Value | [0]" --output text 2>/dev/null)" = "$run" ]
}

# empty_bucket empties an S3 bucket, every version included: CloudFormation
# deletes only empty buckets.
empty_bucket() {
	local v
	while :; do
		v=$(aws s3api list-object-versions --bucket "$1" --max-items 500 --query '{Objects: [Versions, DeleteMarkers][][].{Key: Key, VersionId: VersionId}}' --output json) || return 0
		[ "$(jq '.Objects | length' <<<"$v")" -gt 0 ] || return 0
		aws s3api delete-objects --bucket "$1" --delete "$v" >/dev/null || return 0
	done
}

cleanup() {
	local rc=$? i stack left=() secrets=() r
	trap - EXIT
	# A second Ctrl-C does not abandon the cleanup (what it interrupts is reported as not deleted).
	trap 'echo "aws-smoke: the cleanup goes on (kill -9 $$ abandons it and leaves resources behind)" >&2' INT TERM
	set +e
	rm -rf "$DOCKER_CONFIG"
	step "cleanup: deleting the stacks this run created (tagged cutover-smoke-run=$run) and what they own"
	for ((i = ${#created[@]} - 1; i >= 0; i--)); do
		stack=${created[i]}
		if ! ours "$stack"; then
			aws cloudformation describe-stacks --stack-name "$stack" >/dev/null 2>&1 &&
				{ echo "aws-smoke: stack $stack is not tagged with this run: left alone" >&2; left+=("$stack"); }
			continue
		fi
		for r in $(resources "$stack" AWS::ElasticLoadBalancingV2::LoadBalancer); do
			aws elbv2 modify-load-balancer-attributes --load-balancer-arn "$r" --attributes Key=deletion_protection.enabled,Value=false >/dev/null
		done
		for r in $(resources "$stack" AWS::S3::Bucket); do empty_bucket "$r"; done
		# The stack deletes only empty repositories; these are its own.
		for r in $(resources "$stack" AWS::ECR::Repository); do aws ecr delete-repository --repository-name "$r" --force >/dev/null; done
		mapfile -t -O "${#secrets[@]}" secrets < <(resources "$stack" AWS::SecretsManager::Secret)
		echo "deleting $stack"
		if ! aws cloudformation delete-stack --stack-name "$stack" || ! aws cloudformation wait stack-delete-complete --stack-name "$stack"; then
			left+=("$stack")
		fi
	done
	# A deleted secret keeps its name for its recovery window: free it for the next run.
	for r in "${secrets[@]}"; do
		aws secretsmanager delete-secret --secret-id "$r" --force-delete-without-recovery >/dev/null 2>&1
	done
	if [ -n "$created_bucket" ]; then
		echo "deleting bucket $created_bucket"
		aws s3 rb "s3://$created_bucket" --force >/dev/null || left+=("bucket $created_bucket")
	fi
	if [ ${#left[@]} -gt 0 ]; then
		echo "aws-smoke: NOT deleted: ${left[*]}: delete them in the console" >&2
		[ "$rc" != 0 ] || rc=1
	fi
	if [ "$rc" = 0 ]; then
		rm -rf "$work"
		echo "aws-smoke: cleanup done (KMS keys are scheduled for deletion by AWS after its waiting period; the log groups Lambda and CloudWatch Synthetics create for themselves, /aws/lambda/$project-* and /aws/lambda/cwsyn-*, stay)"
	else
		echo "aws-smoke: failed (status $rc); cleanup done; cutover's state and the templates are in $work" >&2
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# create_stack NAME TEMPLATE [PARAMETER=VALUE...] creates a stack, tagged
# with this run, and waits for it; on failure it prints the failed resources'
# reasons. The template goes through the run's bucket: the app and pipeline
# templates are larger than the 51,200 bytes CloudFormation takes inline.
# (create-stack, not `aws cloudformation deploy`: the stack must be new, and
# moto's change sets register no exports, which the app stacks import.)
create_stack() {
	local name=$1 template=$2 key params
	shift 2
	key="$run/$(basename "$template")"
	aws s3 cp "$template" "s3://$bucket/$key" --only-show-errors
	params=$(jq -cn '[$ARGS.positional[] | capture("^(?<ParameterKey>[^=]+)=(?<ParameterValue>.*)$")]' --args "$@")
	created+=("$name")
	aws cloudformation create-stack --stack-name "$name" --template-url "https://$bucket.s3.$AWS_REGION.amazonaws.com/$key" \
		--capabilities CAPABILITY_IAM --tags "Key=cutover-smoke-run,Value=$run" --parameters "$params" >/dev/null
	if ! aws cloudformation wait stack-create-complete --stack-name "$name"; then
		echo "aws-smoke: stack $name failed:" >&2
		aws cloudformation describe-stack-events --stack-name "$name" \
			--query "StackEvents[?ends_with(ResourceStatus, 'FAILED')].[LogicalResourceId, ResourceStatusReason]" --output text >&2
		return 1
	fi
	echo "created stack $name"
}

step "a bucket for the templates (deleted with the rest)"
bucket="$project-smoke-$account-$run"
aws s3 mb "s3://$bucket" --region "$AWS_REGION"
created_bucket=$bucket
aws s3api put-public-access-block --bucket "$bucket" \
	--public-access-block-configuration BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true
aws s3api put-bucket-tagging --bucket "$bucket" --tagging "TagSet=[{Key=cutover-smoke-run,Value=$run}]"

step "build cutover and copy the example"
cutover=${CUTOVER:-}
if [ -z "$cutover" ]; then
	(cd "$root" && CGO_ENABLED=0 go build -o "$work/cutover" ./cmd/cutover)
	cutover="$work/cutover"
fi
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

step "shared stack (VPC, endpoints, ECR, KMS, notifications)"
create_stack "$project-shared" cf/shared.yaml

step "bootstrap: the first images, tagged initial (the app stacks' task definitions run them)"
for svc in backend frontend; do
	# What build.commands do: the Dockerfiles copy the static binary bin/$svc.
	(cd "$svc" && CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath -o "bin/$svc" .)
done
if [ -n "$endpoint" ]; then
	# No registry behind the endpoint: register a manifest under the tag instead.
	for svc in backend frontend; do
		manifest=$(jq -cn --arg svc "$svc" '{schemaVersion: 2, mediaType: "application/vnd.docker.distribution.manifest.v2+json",
			config: {mediaType: "application/vnd.docker.container.image.v1+json", size: 2, digest: ("sha256:" + ("0" * 64))},
			layers: [{mediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", size: 2, digest: ("sha256:" + ("1" * 64))}],
			annotations: {service: $svc}}')
		aws ecr put-image --repository-name "$project/$svc" --image-tag initial --image-manifest "$manifest" >/dev/null
	done
else
	aws ecr get-login-password | docker login --username AWS --password-stdin "$registry"
	for svc in backend frontend; do
		docker build --platform linux/amd64 -t "$registry/$project/$svc:initial" "$svc"
		docker push "$registry/$project/$svc:initial"
	done
fi

step "app stacks"
for env in staging production; do
	domain=$STAGING_DOMAIN
	[ "$env" = production ] && domain=$PRODUCTION_DOMAIN
	create_stack "$project-app-$env" "cf/app-$env.yaml" "CertificateArn=$CERTIFICATE_ARN" "DomainName=$domain"
done

step "pipeline stack (CodeDeploy application and deployment groups; its source connection stays pending)"
sum=$(sha256sum "$cutover" | cut -d' ' -f1)
create_stack "$project-pipeline" cf/pipeline.yaml RepositoryId=example/bluemed CutoverDownloadUrl=https://example.invalid/cutover "CutoverSha256=$sum"

step "check the bootstrap: each service's task definition runs its repository's initial image"
for env in staging production; do
	Env=$(tr '[:lower:]' '[:upper:]' <<<"${env:0:1}")${env:1}
	outputs=$(aws cloudformation describe-stacks --stack-name "$project-app-$env" --query 'Stacks[0].Outputs' --output json)
	cluster=$(jq -r --arg k "${Env}ClusterName" '.[] | select(.OutputKey == $k) | .OutputValue' <<<"$outputs")
	for svc in backend frontend; do
		Svc=$(tr '[:lower:]' '[:upper:]' <<<"${svc:0:1}")${svc:1}
		service=$(jq -r --arg k "${Env}${Svc}ServiceName" '.[] | select(.OutputKey == $k) | .OutputValue' <<<"$outputs")
		td=$(aws ecs describe-services --cluster "$cluster" --services "$service" --query 'services[0].taskDefinition' --output text)
		image=$(aws ecs describe-task-definition --task-definition "$td" --query 'taskDefinition.containerDefinitions[0].image' --output text)
		if [ "$image" != "$registry/$project/$svc:initial" ]; then
			echo "aws-smoke: FAILED: $env $svc runs $image, not $registry/$project/$svc:initial" >&2
			exit 1
		fi
		aws ecr describe-images --repository-name "$project/$svc" --image-ids imageTag=initial >/dev/null
		echo "$env $svc: $image"
	done
done
"$cutover" logs production backend --since 30m

if [ "$until" = stacks ]; then
	echo "aws-smoke: passed until stacks"
	exit 0
fi

step "release 0: staging, rolling (ECS deployment with circuit breaker)"
"$cutover" deploy staging
"$cutover" status staging

step "release 1: production, CodeDeploy blue/green (linear 10%/min, 1 min bake, 5 min termination wait: about 16 minutes)"
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
	echo "aws-smoke: FAILED: the bad release was reported as a success" >&2
	exit 1
fi
"$cutover" history production
"$cutover" status production
echo "aws-smoke: passed"
