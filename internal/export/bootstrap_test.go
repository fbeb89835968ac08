package export

import (
	"encoding/json"
	"testing"
)

// TestRepositoriesKeepTheBootstrapImage: the ECR lifecycle policy never
// expires the first images, which the app stacks' task definitions run
// (ImageTag's default) and a later stack update of a rolling service
// deploys again: rule 1 selects them by that tag, and ECR does not let a
// rule of lower priority (the "last 50 images" one) expire an image a rule
// of higher priority selects by its tags; a rule of tagStatus any must come
// last ("Lifecycle policy properties" and evaluation rules, Amazon ECR User
// Guide).
func TestRepositoriesKeepTheBootstrapImage(t *testing.T) {
	var imageTag string
	var policies []string
	for _, f := range loadBluemed(t) {
		m := rendered(t, f)
		switch f.Name {
		case "app-production":
			imageTag, _ = m["Parameters"].(map[string]any)["ImageTag"].(map[string]any)["Default"].(string)
		case "shared":
			for id, p := range resourcesOfType(m, "AWS::ECR::Repository") {
				text, _ := p["LifecyclePolicy"].(map[string]any)["LifecyclePolicyText"].(string)
				if text == "" {
					t.Fatalf("%s: no lifecycle policy", id)
				}
				policies = append(policies, text)
			}
		}
	}
	if imageTag == "" || len(policies) != 2 {
		t.Fatalf("ImageTag default %q, %d repositories", imageTag, len(policies))
	}
	for _, text := range policies {
		var policy struct {
			Rules []struct {
				RulePriority int
				Selection    struct {
					TagStatus     string
					TagPrefixList []string
					CountType     string
					CountNumber   int
				}
			}
		}
		if err := json.Unmarshal([]byte(text), &policy); err != nil {
			t.Fatal(err)
		}
		first, last := policy.Rules[0], policy.Rules[0]
		for _, r := range policy.Rules {
			if r.RulePriority < first.RulePriority {
				first = r
			}
			if r.RulePriority > last.RulePriority {
				last = r
			}
		}
		for _, r := range policy.Rules {
			if r.Selection.TagStatus == "any" && r.RulePriority != last.RulePriority {
				t.Errorf("%s: a rule of tagStatus any must have the highest rulePriority (ECR refuses the policy otherwise)", text)
			}
		}
		s := first.Selection
		keeps := s.TagStatus == "tagged" && len(s.TagPrefixList) == 1 && s.TagPrefixList[0] == imageTag && s.CountType == "imageCountMoreThan" && s.CountNumber >= 1
		if !keeps {
			t.Errorf("the first rule of %s does not keep the %q image", text, imageTag)
		}
	}
}
