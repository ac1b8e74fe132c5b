package stacks

import (
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/geoblob/geoblob/shared/metrics"
)

// Registry health metrics: functions/backfill publishes them after every pass
// as CloudWatch Embedded Metric Format lines (shared/metrics.WriteEMF), in
// this namespace, without dimensions, so the alarms below see one series each.
const (
	// MetricsNamespace is the CloudWatch namespace of geoblob's own metrics.
	MetricsNamespace = metrics.Namespace
	// MetricOldestUnsyncedAge is the age in seconds of the oldest registry row
	// waiting for a sync (0 when all are synced).
	MetricOldestUnsyncedAge = metrics.NameOldestUnsyncedAge
	// MetricFailedBlobs is the number of rows in replication state failed.
	MetricFailedBlobs = metrics.NameFailedBlobs
	// MetricQuarantinedBlobs is the number of rows given up on (retries
	// exhausted) that need an operator.
	MetricQuarantinedBlobs = metrics.NameQuarantinedBlobs
)

// alarmTopic creates the SNS topic alarms notify (and its e-mail subscription).
func alarmTopic(scope constructs.Construct, c Config) awssns.Topic {
	topic := awssns.NewTopic(scope, jsii.String("AlarmTopic"), &awssns.TopicProps{
		DisplayName: jsii.String("geoblob alarms"),
		EnforceSSL:  jsii.Bool(true),
	})
	if c.AlarmEmail != "" {
		topic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(c.AlarmEmail), nil))
	}
	return topic
}

// alarm creates an alarm on m that notifies topic.
func alarm(scope constructs.Construct, id, name, desc string, m awscloudwatch.IMetric, threshold float64, periods int, topic awssns.ITopic) awscloudwatch.Alarm {
	a := awscloudwatch.NewAlarm(scope, jsii.String(id), &awscloudwatch.AlarmProps{
		AlarmName:          jsii.String(name),
		AlarmDescription:   jsii.String(desc),
		Metric:             m,
		Threshold:          jsii.Number(threshold),
		EvaluationPeriods:  jsii.Number(float64(periods)),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
		TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
	})
	action := awscloudwatchactions.NewSnsAction(topic)
	a.AddAlarmAction(action)
	a.AddOkAction(action)
	return a
}

func registryMetric(name, stat string) awscloudwatch.Metric {
	return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
		Namespace:  jsii.String(MetricsNamespace),
		MetricName: jsii.String(name),
		Statistic:  jsii.String(stat),
		Period:     awscdk.Duration_Minutes(jsii.Number(5)),
	})
}

// monitoring creates the alarms and the dashboard of the secondary stack.
func (s *SecondaryStack) monitoring(c Config, specs []FunctionSpec) {
	scope := constructs.NewConstruct(s.Stack, jsii.String("Monitoring"))
	topic := alarmTopic(scope, c)
	s.alarmTopic = topic
	minute := awscdk.Duration_Minutes(jsii.Number(1))
	five := awscdk.Duration_Minutes(jsii.Number(5))

	var queueWidgets, fnWidgets []awscloudwatch.IWidget
	for _, spec := range specs {
		fn := s.Functions[spec.Name]
		id := exportID(spec.Name)
		lower := strings.ToLower(spec.Name)
		errs := fn.MetricErrors(&awscloudwatch.MetricOptions{Period: five, Statistic: jsii.String("Sum")})
		thr := fn.MetricThrottles(&awscloudwatch.MetricOptions{Period: five, Statistic: jsii.String("Sum")})
		alarm(scope, id+"Errors", c.Prefix+"-"+lower+"-errors",
			"geoblob "+spec.Name+": invocations failed (see its log group)", errs, 1, 1, topic)
		alarm(scope, id+"Throttles", c.Prefix+"-"+lower+"-throttles",
			"geoblob "+spec.Name+": invocations throttled (concurrency cap or account limit)", thr, 1, 1, topic)
		fnWidgets = append(fnWidgets, awscloudwatch.NewGraphWidget(&awscloudwatch.GraphWidgetProps{
			Title: jsii.String(spec.Name),
			Width: jsii.Number(8),
			Left: &[]awscloudwatch.IMetric{
				fn.MetricInvocations(&awscloudwatch.MetricOptions{Period: five, Statistic: jsii.String("Sum")}), errs, thr,
			},
			Right: &[]awscloudwatch.IMetric{fn.MetricDuration(&awscloudwatch.MetricOptions{Period: five, Statistic: jsii.String("p99")})},
		}))
		if q, ok := s.Queues[spec.Name]; ok {
			dlq := s.DeadLetterQueues[spec.Name]
			depth := dlq.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{Period: minute, Statistic: jsii.String("Maximum")})
			alarm(scope, id+"DeadLetters", c.Prefix+"-"+lower+"-dlq",
				fmt.Sprintf("geoblob %s: events in the dead-letter queue (failed %d times); fix the cause, then redrive them to the queue", spec.Name, c.MaxReceiveCount),
				depth, 1, 1, topic)
			age := q.MetricApproximateAgeOfOldestMessage(&awscloudwatch.MetricOptions{Period: five, Statistic: jsii.String("Maximum")})
			alarm(scope, id+"QueueAge", c.Prefix+"-"+lower+"-queue-age",
				"geoblob "+spec.Name+": events wait longer than 15 minutes", age, 15*60, 3, topic)
			queueWidgets = append(queueWidgets, awscloudwatch.NewGraphWidget(&awscloudwatch.GraphWidgetProps{
				Title: jsii.String(spec.Name + " queue"),
				Width: jsii.Number(12),
				Left: &[]awscloudwatch.IMetric{
					q.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{Period: minute, Statistic: jsii.String("Maximum")}),
					depth,
				},
				Right: &[]awscloudwatch.IMetric{age},
			}))
		}
	}

	oldest := registryMetric(MetricOldestUnsyncedAge, "Maximum")
	failed := registryMetric(MetricFailedBlobs, "Minimum")
	quarantined := registryMetric(MetricQuarantinedBlobs, "Maximum")
	alarm(scope, "OldestUnsynced", c.Prefix+"-oldest-unsynced",
		fmt.Sprintf("geoblob: a blob has been unsynced for more than %d minutes", c.OldestUnsyncedAlarmMinutes),
		oldest, float64(c.OldestUnsyncedAlarmMinutes*60), 1, topic)
	alarm(scope, "FailedBlobs", c.Prefix+"-failed-blobs",
		"geoblob: registry rows stay failed for 15 minutes (retries with backoff have not healed them)", failed, 1, 3, topic)
	alarm(scope, "QuarantinedBlobs", c.Prefix+"-quarantined-blobs",
		"geoblob: registry rows quarantined; they need a human", quarantined, 1, 1, topic)

	inputAlarms(scope, c, topic)
	typeWidgets := s.typeMonitoring(c, scope, topic)
	drWidgets := s.drReadiness(c, scope, topic)
	registryWidgets := []awscloudwatch.IWidget{
		awscloudwatch.NewGraphWidget(&awscloudwatch.GraphWidgetProps{
			Title: jsii.String("Oldest unsynced blob (s)"), Width: jsii.Number(8),
			Left: &[]awscloudwatch.IMetric{oldest},
		}),
		awscloudwatch.NewGraphWidget(&awscloudwatch.GraphWidgetProps{
			Title: jsii.String("Failed and quarantined blobs"), Width: jsii.Number(8),
			Left: &[]awscloudwatch.IMetric{failed, quarantined},
		}),
	}
	// LocalStack provides no dashboards (and there is no Aurora cluster).
	if !c.LocalStack() {
		registryWidgets = append(registryWidgets, awscloudwatch.NewGraphWidget(&awscloudwatch.GraphWidgetProps{
			Title: jsii.String("Registry database"), Width: jsii.Number(8),
			Left:  &[]awscloudwatch.IMetric{s.Cluster.MetricServerlessDatabaseCapacity(&awscloudwatch.MetricOptions{Period: five})},
			Right: &[]awscloudwatch.IMetric{s.Cluster.MetricDatabaseConnections(&awscloudwatch.MetricOptions{Period: five})},
		}))
		rows := [][]awscloudwatch.IWidget{registryWidgets, drWidgets, typeWidgets, queueWidgets, fnWidgets}
		dash := awscloudwatch.NewDashboard(scope, jsii.String("Dashboard"), &awscloudwatch.DashboardProps{
			DashboardName: jsii.String(c.Prefix + "-replication"),
		})
		for _, row := range rows {
			if len(row) > 0 {
				dash.AddWidgets(slices.Clone(row)...)
			}
		}
	}
	awscdk.NewCfnOutput(s.Stack, jsii.String("AlarmTopicArn"), &awscdk.CfnOutputProps{
		Value: topic.TopicArn(), Description: jsii.String("SNS topic of the secondary region's alarms"),
	})
}
