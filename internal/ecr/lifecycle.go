package ecr

import (
	"encoding/json"
	"reflect"
)

type lifecycleRule struct {
	RulePriority int    `json:"rulePriority"`
	Description  string `json:"description"`
	Selection    struct {
		TagStatus   string `json:"tagStatus"`
		CountType   string `json:"countType"`
		CountUnit   string `json:"countUnit,omitempty"`
		CountNumber int    `json:"countNumber"`
	} `json:"selection"`
	Action struct {
		Type string `json:"type"`
	} `json:"action"`
}

// LifecyclePolicy expires untagged images after a day and keeps the last
// keep images. The "any" rule must have the highest priority number (ECR
// evaluates it last).
func LifecyclePolicy(keep int) string {
	var untagged, count lifecycleRule
	untagged.RulePriority, untagged.Description = 1, "expire untagged images after 1 day"
	untagged.Selection.TagStatus, untagged.Selection.CountType = "untagged", "sinceImagePushed"
	untagged.Selection.CountUnit, untagged.Selection.CountNumber = "days", 1
	untagged.Action.Type = "expire"
	count.RulePriority, count.Description = 2, "keep the last images (cutover ecr.lifecycle_keep)"
	count.Selection.TagStatus, count.Selection.CountType = "any", "imageCountMoreThan"
	count.Selection.CountNumber = keep
	count.Action.Type = "expire"
	b, _ := json.Marshal(map[string]any{"rules": []lifecycleRule{untagged, count}})
	return string(b)
}

// sameJSON compares two JSON documents by value, since ECR may reformat
// the stored policy text.
func sameJSON(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}
