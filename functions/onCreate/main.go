// Command onCreate is the geoblob Lambda function subscribed to the primary
// bucket's ObjectCreated:* notifications (through SQS or EventBridge): it
// registers each blob and copies it to the secondary. Thin wiring only.
package main

import (
	"os"

	"github.com/geoblob/geoblob/shared/app"
	"github.com/geoblob/geoblob/shared/events"
)

func main() {
	os.Exit(app.RunLambda("onCreate", app.EventFunction("onCreate", events.KindCreated)))
}
