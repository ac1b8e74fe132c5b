package blobstore

import (
	"context"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Version is one entry of a versioned bucket's history of a key: an object
// version or a delete marker.
type Version struct {
	Key          string
	VersionID    string
	IsLatest     bool
	DeleteMarker bool
	LastModified time.Time
	Size         int64
	ETag         string
}

// ListVersions calls fn with each page of the versions and delete markers
// of keys under prefix (IAM: s3:ListBucketVersions). Within a key, S3
// returns the newest version first. A page is never empty.
func (s *Store) ListVersions(ctx context.Context, prefix string, fn func(page []Version) error) error {
	in := &s3.ListObjectVersionsInput{Bucket: &s.bucket}
	if prefix != "" {
		in.Prefix = &prefix
	}
	for {
		out, err := s.client.ListObjectVersions(ctx, in)
		if err != nil {
			return opError("list-versions", s.bucket, prefix, err)
		}
		page := make([]Version, 0, len(out.Versions)+len(out.DeleteMarkers))
		for _, v := range out.Versions {
			page = append(page, Version{
				Key: aws.ToString(v.Key), VersionID: aws.ToString(v.VersionId), IsLatest: aws.ToBool(v.IsLatest),
				LastModified: aws.ToTime(v.LastModified), Size: aws.ToInt64(v.Size), ETag: aws.ToString(v.ETag),
			})
		}
		for _, m := range out.DeleteMarkers {
			page = append(page, Version{
				Key: aws.ToString(m.Key), VersionID: aws.ToString(m.VersionId), IsLatest: aws.ToBool(m.IsLatest),
				LastModified: aws.ToTime(m.LastModified), DeleteMarker: true,
			})
		}
		if len(page) > 0 {
			if err := fn(page); err != nil {
				return err
			}
		}
		if !aws.ToBool(out.IsTruncated) {
			return nil
		}
		in.KeyMarker, in.VersionIdMarker = out.NextKeyMarker, out.NextVersionIdMarker
	}
}

// OpenVersion starts reading one version of an object (IAM:
// s3:GetObjectVersion); an empty versionID reads the current version like
// Open. The caller must close the body. A missing version gives an error
// wrapping ErrNotFound.
func (s *Store) OpenVersion(ctx context.Context, key, versionID string) (io.ReadCloser, Object, error) {
	in := &s3.GetObjectInput{Bucket: &s.bucket, Key: &key}
	if versionID != "" {
		in.VersionId = &versionID
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		return nil, Object{}, opError("open", s.bucket, key, err)
	}
	return out.Body, object(key, out.ContentLength, out.ETag, out.VersionId, out.ContentType, out.Metadata, out.LastModified), nil
}
