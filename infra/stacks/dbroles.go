package stacks

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsrds"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/jsii-runtime-go"
)

// Database roles. The Aurora master user (RegistrySecret) owns the schema
// and is used by migrate only. Every other function logs in as
// RuntimeDatabaseUser (RuntimeSecret), a member of the registry's
// geoblob_runtime role: rows only, no DDL (migration 00100). Both secrets
// are registered with RDS Proxy (one secret per database user; the proxy
// authenticates each client against the secret of the user it names), and
// both rotate on a schedule with Secrets Manager's hosted single-user
// PostgreSQL rotation. The runtime login and its password are made by
// migrate (registry.EnsureRuntimeLogin) from the runtime secret, so migrate
// reads both secrets; the runtime functions read only theirs.
//
// IAM authentication to the proxy was the alternative: it needs a token
// generator and a pgx BeforeConnect hook in every function, and the proxy
// still needs a Secrets Manager secret per database user to log in to
// Aurora, so it removes no secret; a secret per role keeps one way of
// connecting for AWS, LocalStack and local stacks.

// RuntimeDatabaseUser is the login of the runtime functions.
const RuntimeDatabaseUser = "geoblob_app"

// SecretRotationDays is how often both registry secrets are rotated.
const SecretRotationDays = 30

// runtimeSecret creates the runtime login's secret, attached to the cluster
// (host, port and engine are added for the rotation function).
func (s *SecondaryStack) runtimeSecret() awssecretsmanager.ISecret {
	secret := awsrds.NewDatabaseSecret(s.Stack, jsii.String("RuntimeSecret"), &awsrds.DatabaseSecretProps{
		Username: jsii.String(RuntimeDatabaseUser),
		Dbname:   jsii.String(DatabaseName),
	})
	secret.ApplyRemovalPolicy(awscdk.RemovalPolicy_RETAIN)
	attached := secret.Attach(s.Cluster)
	s.RuntimeSecret, s.runtimeSecretID = attached, attached.SecretArn()
	return attached
}

// rotateSecrets schedules the rotation of both secrets. The runtime secret's
// first rotation (right after the deploy) must find its login, so it waits
// for the migrations, which create it.
func (s *SecondaryStack) rotateSecrets(c Config, migrations awscdk.CustomResource) {
	if s.Cluster == nil {
		return
	}
	sg := awsec2.NewSecurityGroup(s.Stack, jsii.String("SecretRotationSecurityGroup"), &awsec2.SecurityGroupProps{
		Vpc:         vpcOf(s.Stack),
		Description: jsii.String("geoblob secret rotation: PostgreSQL to the cluster, HTTPS to Secrets Manager"),
	})
	s.Cluster.Connections().AllowDefaultPortFrom(sg, jsii.String("secret rotation"))
	rotation := func(id string, secret awssecretsmanager.ISecret) awssecretsmanager.RotationSchedule {
		return secret.AddRotationSchedule(jsii.String(id), &awssecretsmanager.RotationScheduleOptions{
			HostedRotation: awssecretsmanager.HostedRotation_PostgreSqlSingleUser(&awssecretsmanager.SingleUserHostedRotationOptions{
				Vpc:            vpcOf(s.Stack),
				VpcSubnets:     &awsec2.SubnetSelection{SubnetType: privateSubnetType(c)},
				SecurityGroups: &[]awsec2.ISecurityGroup{sg},
			}),
			AutomaticallyAfter: awscdk.Duration_Days(jsii.Number(SecretRotationDays)),
		})
	}
	rotation("OwnerRotation", s.Secret)
	rt := rotation("RuntimeRotation", s.RuntimeSecret)
	if migrations != nil {
		rt.Node().AddDependency(migrations)
	}
}

// databaseEnv points a function at its database secret: migrate at the
// owner's (and the runtime secret it applies), every other function at the
// runtime login's.
func (s *SecondaryStack) databaseEnv(spec FunctionSpec, env map[string]*string) {
	if spec.Name == "migrate" {
		env["GEOBLOB_DATABASE_SECRET_ARN"] = s.secretID
		if s.runtimeSecretID != s.secretID {
			env["GEOBLOB_DATABASE_RUNTIME_SECRET_ARN"] = s.runtimeSecretID
		}
		return
	}
	env["GEOBLOB_DATABASE_SECRET_ARN"] = s.runtimeSecretID
}

// grantDatabase lets fn read exactly the secrets databaseEnv named.
func (s *SecondaryStack) grantDatabase(spec FunctionSpec, fn awslambda.Function) {
	if spec.Name == "migrate" {
		s.Secret.GrantRead(fn, nil)
		if s.RuntimeSecret != s.Secret {
			s.RuntimeSecret.GrantRead(fn, nil)
		}
		return
	}
	s.RuntimeSecret.GrantRead(fn, nil)
}
