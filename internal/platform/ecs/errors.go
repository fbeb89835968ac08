package ecs

import (
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// explained is an SDK error said in one plain line; it wraps the SDK's.
type explained struct {
	msg string
	err error
}

func (e *explained) Error() string { return e.msg }
func (e *explained) Unwrap() error { return e.err }

// explain turns an SDK error into one plain line naming the action and the
// resource. Throttling has already been retried with backoff by the SDK's
// retryer when it reaches here.
func explain(err error, resource string) error {
	if err == nil {
		return nil
	}
	if e := explainText(err, resource); e != nil {
		return &explained{msg: e.Error(), err: err}
	}
	return nil
}

// transient says whether a call may well succeed when made again later: it
// was throttled, or failed to reach AWS, past the SDK's own retries.
func transient(err error) bool {
	var me *retry.MaxAttemptsError
	var se *smithyhttp.RequestSendError
	var ae smithy.APIError
	if errors.As(err, &me) || errors.As(err, &se) {
		return true
	}
	if errors.As(err, &ae) {
		code := ae.ErrorCode()
		return strings.Contains(code, "Throttl") || code == "TooManyRequestsException" || code == "RequestLimitExceeded" || ae.ErrorFault() == smithy.FaultServer
	}
	return false
}

func explainText(err error, resource string) error {
	action := "aws"
	var oe *smithy.OperationError
	if errors.As(err, &oe) {
		action = strings.ToLower(serviceAction(oe.ServiceID)) + ":" + oe.OperationName
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code := ae.ErrorCode()
		switch {
		case strings.Contains(code, "AccessDenied") || code == "UnauthorizedOperation" || code == "UnrecognizedClientException":
			return fmt.Errorf("aws: access denied to %s on %s: grant the action to the deploying role or profile", action, resource)
		case strings.Contains(code, "Throttl") || code == "TooManyRequestsException" || code == "RequestLimitExceeded":
			return fmt.Errorf("aws: %s on %s still throttled after the SDK's retries with backoff: deploy later or ask AWS for a higher rate", action, resource)
		case code == "ExpiredToken" || code == "ExpiredTokenException" || code == "InvalidClientTokenId":
			return fmt.Errorf("aws: credentials rejected (%s) for %s: refresh them (`aws sso login`) and retry", code, action)
		}
		return fmt.Errorf("aws: %s on %s: %s: %s", action, resource, code, ae.ErrorMessage())
	}
	var me *retry.MaxAttemptsError
	if errors.As(err, &me) {
		return fmt.Errorf("aws: %s on %s failed after %d attempts: %v", action, resource, me.Attempt, me.Err)
	}
	return fmt.Errorf("aws: %s on %s: %v", action, resource, err)
}

// serviceAction maps an SDK service ID to its IAM action prefix.
func serviceAction(id string) string {
	switch id {
	case "Elastic Load Balancing v2":
		return "elasticloadbalancing"
	case "CodeDeploy":
		return "codedeploy"
	case "CloudWatch":
		return "cloudwatch"
	case "ECS":
		return "ecs"
	case "CloudFormation":
		return "cloudformation"
	}
	return strings.ReplaceAll(id, " ", "")
}
