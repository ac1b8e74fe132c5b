package stacks

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/geoblob/geoblob/shared/metrics"
)

// DR readiness metrics (the figures of geoblob dr-report): functions/backfill
// writes them after every pass as EMF lines on stdout, per data type and
// summed without a dimension; the RPO is MetricOldestUnsyncedAge.
const (
	// MetricAtRiskObjects counts objects a failover now would lose or serve
	// stale.
	MetricAtRiskObjects = metrics.NameAtRiskObjects
	// MetricAtRiskBytes is the size of the live objects at risk.
	MetricAtRiskBytes = metrics.NameAtRiskBytes
	// DefaultRPOObjectiveSeconds is the default recovery point objective
	// (S3 Replication Time Control's 15 minutes).
	DefaultRPOObjectiveSeconds = 900
)

// drReadiness adds the RPO objective alarm (on the stack's alarm topic) and
// returns the dashboard's DR readiness row.
func (s *SecondaryStack) drReadiness(c Config, scope constructs.Construct, topic awssns.ITopic) []awscloudwatch.IWidget {
	rpo := registryMetric(MetricOldestUnsyncedAge, "Maximum")
	a := awscloudwatch.NewAlarm(scope, jsii.String("RPOObjective"), &awscloudwatch.AlarmProps{
		AlarmName: jsii.String(c.Prefix + "-rpo-objective"),
		AlarmDescription: jsii.String(fmt.Sprintf("geoblob: the RPO (oldest unsynced blob) exceeds the objective of %d s: "+
			"a failover now would lose more than that; run geoblob dr-report (docs/disaster-recovery.md)", c.RPOObjectiveSeconds)),
		Metric:             rpo,
		Threshold:          jsii.Number(float64(c.RPOObjectiveSeconds)),
		EvaluationPeriods:  jsii.Number(1),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
		TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
	})
	action := awscloudwatchactions.NewSnsAction(topic)
	a.AddAlarmAction(action)
	a.AddOkAction(action)
	return []awscloudwatch.IWidget{
		awscloudwatch.NewGraphWidget(&awscloudwatch.GraphWidgetProps{
			Title: jsii.String("RPO: oldest unsynced blob (s) vs objective"), Width: jsii.Number(8),
			Left: &[]awscloudwatch.IMetric{rpo},
			LeftAnnotations: &[]*awscloudwatch.HorizontalAnnotation{{
				Value: jsii.Number(float64(c.RPOObjectiveSeconds)), Label: jsii.String("RPO objective"),
			}},
		}),
		awscloudwatch.NewGraphWidget(&awscloudwatch.GraphWidgetProps{
			Title: jsii.String("Objects and bytes at risk in a failover"), Width: jsii.Number(8),
			Left:  &[]awscloudwatch.IMetric{registryMetric(MetricAtRiskObjects, "Maximum")},
			Right: &[]awscloudwatch.IMetric{registryMetric(MetricAtRiskBytes, "Maximum")},
		}),
	}
}
