package stacks

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"
)

// Stack ids (also the CloudFormation stack names and the template file names
// under cdk.out).
const (
	// PrimaryStackID is the primary region's stack.
	PrimaryStackID = "GeoblobPrimary"
	// SecondaryStackID is the secondary region's stack.
	SecondaryStackID = "GeoblobSecondary"
)

// Stacks are the two stacks of one geoblob deployment.
type Stacks struct {
	// Primary is the primary region's stack.
	Primary *PrimaryStack
	// Secondary is the secondary region's stack.
	Secondary *SecondaryStack
}

// Build validates c and adds both stacks to app. Every parameter problem is
// reported before any construct is created, so a bad parameter fails the
// synth with a message naming its context key.
func Build(app awscdk.App, c Config) (*Stacks, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	specs, err := selectedFunctions(c)
	if err != nil {
		return nil, err
	}
	secondary, err := newSecondaryStack(app, SecondaryStackID, c, specs)
	if err != nil {
		return nil, err
	}
	primary := newPrimaryStack(app, PrimaryStackID, c)
	// The forwarding rule targets the secondary bus: deploy the secondary first.
	primary.Stack.AddDependency(secondary.Stack, jsii.String("the forwarding rule targets the secondary event bus"))
	awscdk.Tags_Of(app).Add(jsii.String("project"), jsii.String("geoblob"), nil)
	return &Stacks{Primary: primary, Secondary: secondary}, nil
}
