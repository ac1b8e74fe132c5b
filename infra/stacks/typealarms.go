package stacks

import (
	"fmt"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/geoblob/geoblob/shared/metrics"
)

// enabledTypes are the data types the functions replicate.
func enabledTypes(c Config) []string {
	if len(c.DataTypes) > 0 {
		return c.DataTypes
	}
	return BuiltinDataTypes()
}

// typeMetric is a per-type metric (dimension DataType) functions/backfill
// writes as EMF after every pass (shared/metrics.WriteTypeEMF). Dashboard
// graphs label it with the type; alarms take it unlabelled (a label would
// turn the alarm into metric math).
func typeMetric(name, dataType, stat string) awscloudwatch.Metric {
	return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
		Namespace:     jsii.String(MetricsNamespace),
		MetricName:    jsii.String(name),
		DimensionsMap: &map[string]*string{metrics.DimensionDataType: jsii.String(dataType)},
		Statistic:     jsii.String(stat),
		Period:        awscdk.Duration_Minutes(jsii.Number(5)),
	})
}

func labelled(m awscloudwatch.Metric, label string) awscloudwatch.IMetric {
	return m.With(&awscloudwatch.MetricOptions{Label: jsii.String(label)})
}

// typeMonitoring creates the per-type alarms (failed rows that stay, the
// oldest unsynced row above the RPO target) and returns the dashboard's
// per-type row.
func (s *SecondaryStack) typeMonitoring(c Config, scope constructs.Construct, topic awssns.ITopic) []awscloudwatch.IWidget {
	types := enabledTypes(c)
	var failed, oldest, pending, synced, latency []awscloudwatch.IMetric
	for _, t := range types {
		id := "Type" + exportID(strings.ReplaceAll(t, "_", ""))
		f := typeMetric(metrics.NameTypeFailed, t, "Minimum")
		o := typeMetric(metrics.NameTypeOldestUnsyncedAge, t, "Maximum")
		alarm(scope, id+"Failed", c.Prefix+"-"+t+"-failed",
			"geoblob "+t+": registry rows stay failed for 15 minutes (retries with backoff have not healed them)", f, 1, 3, topic)
		alarm(scope, id+"OldestUnsynced", c.Prefix+"-"+t+"-oldest-unsynced",
			fmt.Sprintf("geoblob %s: a blob has been unsynced for more than %d minutes", t, c.OldestUnsyncedAlarmMinutes),
			o, float64(c.OldestUnsyncedAlarmMinutes*60), 1, topic)
		failed = append(failed, labelled(f, t))
		oldest = append(oldest, labelled(o, t))
		pending = append(pending, labelled(typeMetric("PendingBytes", t, "Maximum"), t))
		synced = append(synced, labelled(typeMetric("SyncedBlobs", t, "Maximum"), t))
		latency = append(latency, labelled(typeMetric(metrics.NameReplicationLatency, t, "p99"), t))
	}
	graph := func(title string, ms []awscloudwatch.IMetric) awscloudwatch.IWidget {
		return awscloudwatch.NewGraphWidget(&awscloudwatch.GraphWidgetProps{
			Title: jsii.String(title), Width: jsii.Number(8), Left: &ms,
		})
	}
	return []awscloudwatch.IWidget{
		graph("Failed blobs per data type", failed),
		graph("Oldest unsynced blob per data type (s)", oldest),
		graph("Replication latency p99 per data type (s)", latency),
		graph("Synced blobs per data type", synced),
		graph("Bytes pending per data type", pending),
	}
}
