// Command onDelete is the geoblob Lambda function subscribed to the primary
// bucket's ObjectRemoved:* and LifecycleExpiration:* notifications (through
// SQS or EventBridge): it tombstones each blob and deletes the secondary
// copy. Thin wiring only.
package main

import (
	"os"

	"github.com/geoblob/geoblob/shared/app"
	"github.com/geoblob/geoblob/shared/events"
)

func main() {
	os.Exit(app.RunLambda("onDelete", app.EventFunction("onDelete", events.KindRemoved)))
}
