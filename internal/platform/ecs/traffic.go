package ecs

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/cutoverdev/cutover/internal/deploy"
)

// Route implements deploy.Platform. Each service's weights change in one
// ModifyRule (or ModifyListener) call, which the ALB applies atomically;
// services are changed one after the other.
func (p *Platform) Route(ctx context.Context, r deploy.Routing) error {
	if err := p.checkTaskSets(); err != nil {
		return err
	}
	for _, name := range p.names() {
		s := p.o.Services[name]
		if len(r.Production) > 0 {
			var tgs []elbtypes.TargetGroupTuple
			for _, color := range Colors {
				tgs = append(tgs, elbtypes.TargetGroupTuple{TargetGroupArn: aws.String(s.TargetGroups[color]), Weight: aws.Int32(int32(r.Production[color]))})
			}
			if err := p.setActions(ctx, s.Listener, s.Rule, forward(tgs)); err != nil {
				return err
			}
		}
		if s.TestListener == "" && s.TestRule == "" {
			continue
		}
		test := elbtypes.Action{Type: elbtypes.ActionTypeEnumFixedResponse, FixedResponseConfig: &elbtypes.FixedResponseActionConfig{
			StatusCode: aws.String("503"), ContentType: aws.String("text/plain"), MessageBody: aws.String("no revision under test"),
		}}
		if r.Test != "" {
			test = forward([]elbtypes.TargetGroupTuple{{TargetGroupArn: aws.String(s.TargetGroups[r.Test]), Weight: aws.Int32(1)}})
		}
		if err := p.setActions(ctx, s.TestListener, s.TestRule, test); err != nil {
			return err
		}
	}
	return nil
}

func forward(tgs []elbtypes.TargetGroupTuple) elbtypes.Action {
	return elbtypes.Action{Type: elbtypes.ActionTypeEnumForward, ForwardConfig: &elbtypes.ForwardActionConfig{TargetGroups: tgs}}
}

func (p *Platform) setActions(ctx context.Context, listener, rule string, a elbtypes.Action) error {
	if rule != "" {
		_, err := p.c.ELB.ModifyRule(ctx, &elb.ModifyRuleInput{RuleArn: &rule, Actions: []elbtypes.Action{a}})
		return explain(err, "rule "+rule)
	}
	_, err := p.c.ELB.ModifyListener(ctx, &elb.ModifyListenerInput{ListenerArn: &listener, DefaultActions: []elbtypes.Action{a}})
	return explain(err, "listener "+listener)
}

// actions reads a rule's actions, or a listener's default actions.
func (p *Platform) actions(ctx context.Context, listener, rule string) ([]elbtypes.Action, error) {
	if rule != "" {
		out, err := p.c.ELB.DescribeRules(ctx, &elb.DescribeRulesInput{RuleArns: []string{rule}})
		if err != nil {
			return nil, explain(err, "rule "+rule)
		}
		if len(out.Rules) == 0 {
			return nil, fmt.Errorf("elb: rule %s not found", rule)
		}
		return out.Rules[0].Actions, nil
	}
	out, err := p.c.ELB.DescribeListeners(ctx, &elb.DescribeListenersInput{ListenerArns: []string{listener}})
	if err != nil {
		return nil, explain(err, "listener "+listener)
	}
	if len(out.Listeners) == 0 {
		return nil, fmt.Errorf("elb: listener %s not found", listener)
	}
	return out.Listeners[0].DefaultActions, nil
}

// weights maps the forward action's target groups back to colors.
func (s Service) weights(actions []elbtypes.Action) map[string]int {
	w := map[string]int{}
	for _, a := range actions {
		if a.Type != elbtypes.ActionTypeEnumForward {
			continue
		}
		var tgs []elbtypes.TargetGroupTuple
		if a.ForwardConfig != nil {
			tgs = a.ForwardConfig.TargetGroups
		}
		if len(tgs) == 0 && a.TargetGroupArn != nil {
			tgs = []elbtypes.TargetGroupTuple{{TargetGroupArn: a.TargetGroupArn, Weight: aws.Int32(1)}}
		}
		total := 0
		for _, t := range tgs {
			total += int(aws.ToInt32(t.Weight))
		}
		for _, t := range tgs {
			for _, color := range Colors {
				if aws.ToString(t.TargetGroupArn) == s.TargetGroups[color] && total > 0 {
					w[color] += int(aws.ToInt32(t.Weight)) * 100 / total
				}
			}
		}
	}
	for c, v := range w {
		if v == 0 {
			delete(w, c)
		}
	}
	return w
}

// Observe implements deploy.Platform: the task sets of every service and
// the weights of the first service's listener (all services are routed
// alike by Route).
func (p *Platform) Observe(ctx context.Context) (deploy.Observed, error) {
	if err := p.checkTaskSets(); err != nil {
		return deploy.Observed{}, err
	}
	var obs deploy.Observed
	sets := map[string]*deploy.SetInfo{}
	for _, name := range p.names() {
		svc, err := p.describe(ctx, name)
		if err != nil {
			return obs, err
		}
		for _, ts := range svc.TaskSets {
			color, rev, ok := parseExternalID(aws.ToString(ts.ExternalId))
			if !ok || aws.ToString(ts.Status) == "DRAINING" {
				continue
			}
			si := sets[color]
			if si == nil {
				si = &deploy.SetInfo{Color: color, Revision: rev, Tasks: map[string]int{}}
				sets[color] = si
			}
			si.Tasks[name] = int(ts.RunningCount)
		}
	}
	for _, color := range Colors {
		if si := sets[color]; si != nil {
			obs.Sets = append(obs.Sets, *si)
		}
	}
	s := p.o.Services[p.names()[0]]
	acts, err := p.actions(ctx, s.Listener, s.Rule)
	if err != nil {
		return obs, err
	}
	obs.Routing.Production = s.weights(acts)
	if s.TestListener != "" || s.TestRule != "" {
		acts, err := p.actions(ctx, s.TestListener, s.TestRule)
		if err != nil {
			return obs, err
		}
		for c, w := range s.weights(acts) {
			if w > 0 {
				obs.Routing.Test = c
			}
		}
	}
	return obs, nil
}

// loadBalancerDimension is CloudWatch's LoadBalancer dimension ("app/name/id")
// taken from a listener or rule ARN.
func loadBalancerDimension(arn string) string {
	_, rest, ok := strings.Cut(arn, ":listener/")
	if !ok {
		_, rest, ok = strings.Cut(arn, ":listener-rule/")
	}
	if !ok {
		return ""
	}
	parts := strings.Split(rest, "/")
	if len(parts) < 3 {
		return ""
	}
	return strings.Join(parts[:3], "/")
}

// targetGroupDimension is CloudWatch's TargetGroup dimension ("targetgroup/name/id").
func targetGroupDimension(arn string) string {
	if i := strings.Index(arn, ":targetgroup/"); i >= 0 {
		return arn[i+1:]
	}
	return arn
}
