package iamcheck

import (
	"fmt"
	"slices"
	"strings"
)

// Resource kinds a need applies to. A statement's resource is written
// symbolically: "primary" (the bucket ARN), "primary/*" (its objects),
// "kms:secondary" (the KMS key that encrypts the secondary bucket).
const (
	KindBucket = "bucket"
	KindObject = "object"
	KindKey    = "kms-key"
)

// Need is one IAM action a call requires, on one resource.
type Need struct {
	Action string
	// Resource is symbolic: BucketResource, ObjectResource or KeyResource.
	Resource string
}

// BucketResource is the symbolic ARN of a bucket ("primary").
func BucketResource(bucket string) string { return bucket }

// ObjectResource is the symbolic ARN of a bucket's objects ("primary/*").
func ObjectResource(bucket string) string { return bucket + "/*" }

// KeyResource is the symbolic ARN of the KMS key that encrypts bucket.
func KeyResource(bucket string) string { return "kms:" + bucket }

// Sources of the rules below (AWS documentation, fetched 2026-11):
//
//	[SAR]  Service Authorization Reference, Amazon S3 actions:
//	       https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html
//	[OPS]  S3 User Guide, "Required permissions for Amazon S3 API operations":
//	       https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-with-s3-policy-actions.html
//	[MPU]  S3 User Guide, "Multipart upload API and permissions":
//	       https://docs.aws.amazon.com/AmazonS3/latest/userguide/mpuoverview.html#mpuAndPermissions
//	[API:<Op>] S3 API Reference of the operation:
//	       https://docs.aws.amazon.com/AmazonS3/latest/API/API_<Op>.html
//
// rule is what one operation needs; the flags of a Call add to it.
type rule struct {
	// object / objectVersion: the action on the bucket's objects without /
	// with a versionId (both apply to a versioned request when both are set).
	object, objectVersion []string
	// bucket: actions on the bucket ARN.
	bucket []string
	// tagging: extra object action when the x-amz-tagging header is sent.
	tagging string
	// kms: actions on the bucket's KMS key when the bucket is SSE-KMS encrypted;
	// kmsChecksum: when x-amz-checksum-mode is enabled.
	kms, kmsChecksum []string
}

// rules maps each S3 operation geoblob may call to what it needs. Add a
// row (with its source) when a function starts calling a new operation.
var rules = map[string]rule{
	// [API:GetObject] "You need the s3:GetObject permission"; "If you include a
	// versionId ... you must have the s3:GetObjectVersion permission ... The
	// s3:GetObject permission is not required in this scenario." A missing key
	// answers 404 only with s3:ListBucket (403 without), and geoblob maps 404
	// to ErrNotFound, so every object read needs s3:ListBucket on the bucket.
	// SSE-KMS objects are decrypted: kms:Decrypt ([API:GetObject], [SAR]).
	"GetObject": {object: []string{"s3:GetObject"}, objectVersion: []string{"s3:GetObjectVersion"},
		bucket: []string{"s3:ListBucket"}, kms: []string{"kms:Decrypt"}},
	// [API:HeadObject] "To use HEAD, you must have the s3:GetObject permission.
	// You need the relevant read object (or version) permission"; 404 vs 403
	// as for GetObject. "If you enable checksum mode and the object is ...
	// encrypted with a KMS key, you must have permission to use the
	// kms:Decrypt action to retrieve the checksum."
	"HeadObject": {object: []string{"s3:GetObject"}, objectVersion: []string{"s3:GetObjectVersion"},
		bucket: []string{"s3:ListBucket"}, kmsChecksum: []string{"kms:Decrypt"}},
	// [API:GetObjectTagging] "you must have permission to perform the
	// s3:GetObjectTagging action ... To retrieve tags of any other version ...
	// You also need permission for the s3:GetObjectVersionTagging action."
	"GetObjectTagging": {object: []string{"s3:GetObjectTagging"},
		objectVersion: []string{"s3:GetObjectTagging", "s3:GetObjectVersionTagging"}, bucket: []string{"s3:ListBucket"}},
	// [API:GetObjectAttributes] s3:GetObjectAttributes, and
	// s3:GetObjectVersionAttributes with a versionId ([SAR]).
	"GetObjectAttributes": {object: []string{"s3:GetObjectAttributes"},
		objectVersion: []string{"s3:GetObjectVersionAttributes"}, bucket: []string{"s3:ListBucket"}},
	// [API:PutObject] s3:PutObject; "To use this operation with tags
	// (x-amz-tagging) you must have the s3:PutObjectTagging permission" ([OPS]
	// lists it under PutObject). SSE-KMS: kms:GenerateDataKey ([API:PutObject]).
	"PutObject": {object: []string{"s3:PutObject"}, tagging: "s3:PutObjectTagging", kms: []string{"kms:GenerateDataKey"}},
	// [MPU] CreateMultipartUpload, UploadPart and CompleteMultipartUpload are
	// authorised as s3:PutObject; tags sent on create need s3:PutObjectTagging
	// as for PutObject. "the requester must also have permissions for the
	// kms:GenerateDataKey action for the CreateMultipartUpload API. Then, the
	// requester needs permissions for the kms:Decrypt action on the UploadPart
	// and UploadPartCopy APIs" ([API:CreateMultipartUpload]).
	"CreateMultipartUpload":   {object: []string{"s3:PutObject"}, tagging: "s3:PutObjectTagging", kms: []string{"kms:GenerateDataKey"}},
	"UploadPart":              {object: []string{"s3:PutObject"}, kms: []string{"kms:Decrypt"}},
	"CompleteMultipartUpload": {object: []string{"s3:PutObject"}},
	// [MPU] "AbortMultipartUpload: s3:AbortMultipartUpload".
	"AbortMultipartUpload": {object: []string{"s3:AbortMultipartUpload"}},
	// [MPU] ListParts: s3:ListMultipartUploadParts.
	"ListParts": {object: []string{"s3:ListMultipartUploadParts"}},
	// [API:PutObjectTagging] "you must have permission to perform the
	// s3:PutObjectTagging action ... To put tags of any other version, use the
	// versionId query parameter. You also need permission for the
	// s3:PutObjectVersionTagging action."
	"PutObjectTagging": {object: []string{"s3:PutObjectTagging"},
		objectVersion: []string{"s3:PutObjectTagging", "s3:PutObjectVersionTagging"}},
	// [API:DeleteObject] "s3:DeleteObject - To delete an object from a bucket,
	// you must always have the s3:DeleteObject permission. s3:DeleteObjectVersion
	// - To delete a specific version of an object from a versioning-enabled
	// bucket, you must have the s3:DeleteObjectVersion permission."
	"DeleteObject": {object: []string{"s3:DeleteObject"},
		objectVersion: []string{"s3:DeleteObject", "s3:DeleteObjectVersion"}},
	// [API:ListObjectsV2] "you must have READ access to the bucket ...
	// s3:ListBucket" on the bucket ARN; same for ListObjects (v1) and for
	// HeadBucket ([API:HeadBucket]: "you must have the s3:ListBucket permission").
	"ListObjectsV2": {bucket: []string{"s3:ListBucket"}},
	"ListObjects":   {bucket: []string{"s3:ListBucket"}},
	"HeadBucket":    {bucket: []string{"s3:ListBucket"}},
	// [API:ListObjectVersions] s3:ListBucketVersions on the bucket.
	"ListObjectVersions": {bucket: []string{"s3:ListBucketVersions"}},
	// [API:GetBucketLocation] s3:GetBucketLocation on the bucket.
	"GetBucketLocation": {bucket: []string{"s3:GetBucketLocation"}},
	// [API:GetBucketNotificationConfiguration] "you must be the bucket owner or
	// have the s3:GetBucketNotification permission" (the health check).
	"GetBucketNotificationConfiguration": {bucket: []string{"s3:GetBucketNotification"}},
}

// Required returns the IAM actions AWS requires for c. encrypted says
// whether c.Bucket is encrypted with a customer-managed KMS key (the
// secondary always is). An operation missing from the table is an error:
// add its row.
func Required(c Call, encrypted bool) ([]Need, error) {
	r, ok := rules[c.Operation]
	if !ok {
		return nil, fmt.Errorf("iamcheck: %s: no IAM rule for operation %q: add it to the table in internal/iamcheck/actions.go", c, c.Operation)
	}
	var needs []Need
	obj := r.object
	if c.VersionID && r.objectVersion != nil {
		obj = r.objectVersion
	}
	for _, a := range obj {
		needs = append(needs, Need{a, ObjectResource(c.Bucket)})
	}
	if c.Tagging {
		if r.tagging == "" {
			return nil, fmt.Errorf("iamcheck: %s: tagging header on an operation without a tagging rule", c)
		}
		needs = append(needs, Need{r.tagging, ObjectResource(c.Bucket)})
	}
	for _, a := range r.bucket {
		needs = append(needs, Need{a, BucketResource(c.Bucket)})
	}
	if encrypted {
		kms := r.kms
		if c.ChecksumMode {
			kms = append(slices.Clone(kms), r.kmsChecksum...)
		}
		for _, a := range kms {
			needs = append(needs, Need{a, KeyResource(c.Bucket)})
		}
	}
	return needs, nil
}

// Statement is one Allow statement of a role with symbolic resources (see
// Need.Resource). Resources that are not one of the symbolic forms are kept
// as written and never match a need.
type Statement struct {
	Sid       string   `json:"sid,omitempty"`
	Actions   []string `json:"actions"`
	Resources []string `json:"resources"`
}

// grants reports whether sts allow action on resource.
func grants(sts []Statement, action, resource string) bool {
	for _, s := range sts {
		if slices.Contains(s.Actions, action) && slices.Contains(s.Resources, resource) {
			return true
		}
	}
	return false
}

// Covered reports whether an action belongs to the services this check
// covers (S3 and KMS); other grants of a role (logs, network interfaces,
// the database secret, its queue) are not checked here.
func Covered(action string) bool {
	return strings.HasPrefix(action, "s3:") || strings.HasPrefix(action, "kms:")
}

// Check compares the calls function made with the statements of its role:
// every need of every call must be granted on its resource, and every
// covered (S3, KMS) action a statement grants must be needed by some call
// on that resource. encrypted names the buckets encrypted with a
// customer-managed KMS key. It returns one line per problem.
func Check(function string, calls []Call, sts []Statement, encrypted map[string]bool) []string {
	var problems []string
	needed := map[Need][]string{}
	for _, c := range calls {
		if c.Function != function {
			continue
		}
		needs, err := Required(c, encrypted[c.Bucket])
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		for _, n := range needs {
			needed[n] = append(needed[n], c.String())
			if !grants(sts, n.Action, n.Resource) {
				problems = append(problems, fmt.Sprintf("%s: role does not grant %s on %s", c, n.Action, n.Resource))
			}
		}
	}
	for _, s := range sts {
		for _, a := range s.Actions {
			if !Covered(a) {
				continue
			}
			for _, r := range s.Resources {
				if _, ok := needed[Need{a, r}]; !ok {
					problems = append(problems, fmt.Sprintf("%s: role grants %s on %s (statement %q), which no recorded call needs", function, a, r, s.Sid))
				}
			}
		}
	}
	slices.Sort(problems)
	return slices.Compact(problems)
}
