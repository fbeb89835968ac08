package config

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
)

// cronParser reads the standard 5 fields and descriptors (@daily, @every 1h).
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Next is the first time after t (in UTC) at which the schedule fires.
func (s Schedule) Next(t time.Time) (time.Time, error) {
	sched, err := cronParser.Parse(s.Cron)
	if err != nil {
		return time.Time{}, err
	}
	return sched.Next(t.UTC()), nil
}

func (v *validator) schedules(p *Pipeline) {
	for i, s := range p.Schedule {
		path := fmt.Sprintf("pipeline.schedule[%d]", i)
		if s.Cron == "" {
			v.add(path+".cron", `missing (write a cron expression in UTC, such as "0 3 * * *" for 03:00 every day)`)
		} else if _, err := cronParser.Parse(s.Cron); err != nil {
			v.add(path+".cron", `%q is not a cron expression: %v (write 5 fields, minute hour day-of-month month day-of-week, such as "0 3 * * *", or @daily)`, s.Cron, err)
		}
		if s.Branch == "" {
			v.add(path+".branch", "missing (name the branch whose head runs, such as main)")
		}
	}
}
