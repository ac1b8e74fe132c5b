package blobstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/url"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"
)

// Put writes exactly size bytes read from body under key and returns their
// hex SHA-256, computed while the bytes stream through (body is read once).
//
// Memory is bounded whatever the size: objects up to MultipartThreshold are
// held in one buffer of their size and written with a single PutObject that
// carries x-amz-checksum-sha256 (a real S3 rejects bytes that do not match)
// and the ChecksumTag tag. Larger objects go by multipart upload with at
// most Concurrency parts in memory; the part size grows so that a 5 TiB
// object fits in 10,000 parts; the ChecksumTag is added once the upload is
// complete. Transport integrity: the PutObject's signed
// x-amz-checksum-sha256 header, or each part's signed CRC32 header (the
// SDK's default algorithm), is checked by the server; the bodies are sent
// as UNSIGNED-PAYLOAD so they are not hashed a second time for SigV4.
//
// Afterwards Put checks with HeadObject that the stored length equals the
// bytes written (else ErrSizeMismatch and the object is removed), unless
// the server already vouched for the bytes: a PutObject whose response
// echoes the SHA-256 we sent was validated by the server against that
// checksum and the Content-Length, so a HEAD would only repeat it.
//
// If body holds fewer or more than size bytes, Put fails with an error
// wrapping ErrSizeMismatch. On any failure no partial object is left: a
// multipart upload is aborted, a completed object that cannot be tagged or
// whose stored length differs from the bytes written is deleted (an
// object previously stored under key is then gone too, but a single
// PutObject that fails leaves it untouched).
func (s *Store) Put(ctx context.Context, key string, body io.Reader, size int64, attrs PutAttrs) (PutResult, error) {
	if size < 0 || size > MaxObjectSize {
		return PutResult{}, &Error{Op: "put", Bucket: s.bucket, Key: key, Kind: ErrSizeMismatch,
			Err: fmt.Errorf("size %d out of range [0, %d]", size, MaxObjectSize)}
	}
	var (
		res     PutResult
		vouched bool
		err     error
	)
	if size <= s.opts.MultipartThreshold {
		res, vouched, err = s.putSingle(ctx, key, body, size, attrs)
	} else {
		res, err = s.putMultipart(ctx, key, body, size, attrs)
	}
	if err != nil {
		return PutResult{}, err
	}
	if vouched {
		s.log.DebugContext(ctx, "blobstore: put", "key", key, "size", res.Size, "sha256", res.SHA256, "multipart", false)
		return res, nil
	}
	headIn := &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key}
	if res.VersionID != "" {
		headIn.VersionId = &res.VersionID // the version we wrote, not a later one
	}
	head, err := s.client.HeadObject(ctx, headIn)
	if err != nil {
		return PutResult{}, opError("put", s.bucket, key, fmt.Errorf("verify: %w", err))
	}
	if got := aws.ToInt64(head.ContentLength); got != res.Size {
		s.removeWritten(ctx, key, res.VersionID)
		return PutResult{}, &Error{Op: "put", Bucket: s.bucket, Key: key, Kind: ErrSizeMismatch,
			Err: fmt.Errorf("stored %d bytes, wrote %d", got, res.Size), retryable: true}
	}
	s.log.DebugContext(ctx, "blobstore: put", "key", key, "size", res.Size, "sha256", res.SHA256,
		"multipart", size > s.opts.MultipartThreshold)
	return res, nil
}

// putSingle reads the whole body into a buffer of exactly size bytes and
// writes it with one PutObject. vouched reports that the server's response
// echoed the SHA-256 it was sent, i.e. it checked the bytes against it.
func (s *Store) putSingle(ctx context.Context, key string, body io.Reader, size int64, attrs PutAttrs) (res PutResult, vouched bool, err error) {
	buf := make([]byte, size)
	n, err := readFull(body, buf)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return PutResult{}, false, sizeError("put", s.bucket, key, size, int64(n), err)
		}
		return PutResult{}, false, readError(s.bucket, key, err)
	}
	if err := s.checkDrained(key, body, size); err != nil {
		return PutResult{}, false, err
	}
	sum := sha256.Sum256(buf)
	hexSum := hex.EncodeToString(sum[:])
	b64Sum := base64.StdEncoding.EncodeToString(sum[:])
	in := &s3.PutObjectInput{
		Bucket:         &s.bucket,
		Key:            &key,
		Body:           bytes.NewReader(buf),
		ContentLength:  aws.Int64(size),
		ChecksumSHA256: aws.String(b64Sum),
		Tagging:        aws.String(url.Values{ChecksumTag: {hexSum}}.Encode()),
		Metadata:       attrs.Metadata,
	}
	if attrs.ContentType != "" {
		in.ContentType = &attrs.ContentType
	}
	// The body travels as UNSIGNED-PAYLOAD (as the SDK does over TLS): the
	// signed x-amz-checksum-sha256 header already binds the bytes, so the
	// server hashes them once instead of twice.
	out, err := s.client.PutObject(ctx, in, unsignedPayload)
	if err != nil {
		return PutResult{}, false, opError("put", s.bucket, key, err)
	}
	res = PutResult{Size: size, SHA256: hexSum, ETag: aws.ToString(out.ETag), VersionID: aws.ToString(out.VersionId)}
	return res, aws.ToString(out.ChecksumSHA256) == b64Sum, nil
}

// checkDrained fails with ErrSizeMismatch when body holds more than size bytes.
func (s *Store) checkDrained(key string, body io.Reader, size int64) error {
	ok, err := expectEOF(body)
	if err != nil {
		return readError(s.bucket, key, err)
	}
	if !ok {
		return sizeError("put", s.bucket, key, size, size+1, nil)
	}
	return nil
}

func readError(bucket, key string, err error) error {
	return &Error{Op: "put", Bucket: bucket, Key: key, Err: fmt.Errorf("read body: %w", err), retryable: classifyRetryable(err)}
}

// unsignedPayload sends PutObject and UploadPart bodies as
// UNSIGNED-PAYLOAD: what the SDK already does over TLS. Over plain HTTP it
// saves a SHA-256 pass on both ends; integrity in transit rests on the
// signed checksum header (SHA-256 for PutObject, CRC32 per part) and end
// to end on the object SHA-256 computed by Put.
//
// The hash is preset at the front of the Finalize step so that neither the
// checksum middleware (which would otherwise hash the part alongside its
// CRC32) nor the signer computes it; over TLS the checksum middleware
// still switches to its streaming trailer as usual.
func unsignedPayload(o *s3.Options) {
	o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
		return st.Finalize.Add(middleware.FinalizeMiddlewareFunc("geoblob:UnsignedPayload",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (
				middleware.FinalizeOutput, middleware.Metadata, error,
			) {
				return next.HandleFinalize(v4.SetPayloadHash(ctx, "UNSIGNED-PAYLOAD"), in)
			}), middleware.Before)
	})
}

// PartPlan returns the part size and the number of parts in flight a
// multipart Put of size bytes uses: the configured part size, grown (in
// whole MiB) until size fits in MaxParts parts, and the configured
// concurrency, reduced so that the buffers held stay within
// max(PartSize*Concurrency, one grown part).
func (s *Store) PartPlan(size int64) (partSize int64, concurrency int) {
	partSize = s.opts.PartSize
	if need := (size + MaxParts - 1) / MaxParts; need > partSize {
		const mib = 1 << 20
		partSize = (need + mib - 1) / mib * mib
	}
	budget := s.opts.PartSize * int64(s.opts.Concurrency)
	concurrency = s.opts.Concurrency
	if partSize*int64(concurrency) > budget {
		concurrency = int(max(1, budget/partSize))
	}
	return partSize, concurrency
}

type partJob struct {
	number int32
	buf    *[]byte
	n      int64
}

// putMultipart streams body through a bounded pipeline: this goroutine reads
// and hashes one part at a time, up to concurrency workers upload them.
func (s *Store) putMultipart(ctx context.Context, key string, body io.Reader, size int64, attrs PutAttrs) (PutResult, error) {
	partSize, concurrency := s.PartPlan(size)
	nParts := (size + partSize - 1) / partSize

	create := &s3.CreateMultipartUploadInput{
		Bucket:            &s.bucket,
		Key:               &key,
		Metadata:          attrs.Metadata,
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
	}
	if attrs.ContentType != "" {
		create.ContentType = &attrs.ContentType
	}
	mpu, err := s.client.CreateMultipartUpload(ctx, create)
	if err != nil {
		return PutResult{}, opError("put", s.bucket, key, fmt.Errorf("create multipart upload: %w", err))
	}
	uploadID := aws.ToString(mpu.UploadId)

	h := sha256.New()
	parts, read, err := s.uploadParts(ctx, key, uploadID, body, h, size, partSize, concurrency, nParts)
	if err == nil && read == size {
		err = s.checkDrained(key, body, size)
	}
	if err != nil {
		s.abort(ctx, key, uploadID)
		return PutResult{}, err
	}

	done, err := s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          &s.bucket,
		Key:             &key,
		UploadId:        &uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		s.abort(ctx, key, uploadID)
		return PutResult{}, opError("put", s.bucket, key, fmt.Errorf("complete multipart upload: %w", err))
	}
	hexSum := hex.EncodeToString(h.Sum(nil))
	res := PutResult{Size: size, SHA256: hexSum, ETag: aws.ToString(done.ETag), VersionID: aws.ToString(done.VersionId)}

	tag := &s3.PutObjectTaggingInput{
		Bucket:  &s.bucket,
		Key:     &key,
		Tagging: &types.Tagging{TagSet: []types.Tag{{Key: aws.String(ChecksumTag), Value: aws.String(hexSum)}}},
	}
	if res.VersionID != "" {
		tag.VersionId = &res.VersionID
	}
	if _, err := s.client.PutObjectTagging(ctx, tag); err != nil {
		s.removeWritten(ctx, key, res.VersionID)
		return PutResult{}, opError("put", s.bucket, key, fmt.Errorf("tag checksum: %w", err))
	}
	return res, nil
}

// uploadParts reads nParts parts from body (hashing them into h in order)
// and uploads them with up to concurrency workers. At most concurrency
// part buffers exist, allocated on first use and reused for the whole
// upload; they are garbage once it ends (no pool keeps them alive). It returns the completed
// parts in order and the number of bytes read.
func (s *Store) uploadParts(ctx context.Context, key, uploadID string, body io.Reader, h hash.Hash,
	size, partSize int64, concurrency int, nParts int64,
) ([]types.CompletedPart, int64, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	parts := make([]types.CompletedPart, nParts)
	free := make(chan *[]byte, concurrency)
	for range concurrency {
		free <- nil // allocated on first use
	}
	jobs := make(chan partJob)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel(err) })
	}
	for range concurrency {
		wg.Go(func() {
			for j := range jobs {
				out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
					Bucket:            &s.bucket,
					Key:               &key,
					UploadId:          &uploadID,
					PartNumber:        aws.Int32(j.number),
					Body:              bytes.NewReader((*j.buf)[:j.n]),
					ContentLength:     aws.Int64(j.n),
					ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
				}, unsignedPayload)
				if err != nil {
					fail(opError("put", s.bucket, key, fmt.Errorf("upload part %d: %w", j.number, err)))
				} else {
					parts[j.number-1] = types.CompletedPart{
						PartNumber:    aws.Int32(j.number),
						ETag:          out.ETag,
						ChecksumCRC32: out.ChecksumCRC32,
					}
				}
				free <- j.buf
			}
		})
	}

	var read int64
loop:
	for i := int64(0); i < nParts; i++ {
		var buf *[]byte
		select {
		case buf = <-free:
		case <-ctx.Done():
			break loop
		}
		if ctx.Err() != nil {
			free <- buf // give back what was taken, even the nil placeholder
			break
		}
		if buf == nil {
			b := make([]byte, partSize)
			buf = &b
		}
		n := min(partSize, size-read)
		got, err := readFull(body, (*buf)[:n])
		read += int64(got)
		if err == nil {
			h.Write((*buf)[:n])
		}
		if err != nil {
			free <- buf
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				fail(sizeError("put", s.bucket, key, size, read, err))
			} else {
				fail(readError(s.bucket, key, err))
			}
			break
		}
		select {
		case jobs <- partJob{number: int32(i + 1), buf: buf, n: n}:
		case <-ctx.Done():
			free <- buf
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = opError("put", s.bucket, key, context.Cause(ctx))
	}
	return parts, read, firstErr
}

// abort abandons a multipart upload so that no parts linger, even when ctx
// is already cancelled.
func (s *Store) abort(ctx context.Context, key, uploadID string) {
	cctx, cancel := cleanupContext(ctx)
	defer cancel()
	if _, err := s.client.AbortMultipartUpload(cctx, &s3.AbortMultipartUploadInput{
		Bucket: &s.bucket, Key: &key, UploadId: &uploadID,
	}); err != nil && !isNotFound(err) {
		s.log.WarnContext(ctx, "blobstore: abort multipart upload failed; parts may linger until a lifecycle rule removes them",
			"key", key, "upload_id", uploadID, "err", err)
	}
}

// removeWritten deletes an object this Put completed but could not finish
// (tag, verify), so that no unverified object stays current. It deletes by
// key, not by versionID: in a versioned bucket that is a delete marker (the
// unverified version stays noncurrent until the lifecycle rule expires
// it), and the writers' roles need s3:DeleteObject only, never
// s3:DeleteObjectVersion, which could destroy the disaster-recovery copy's
// history (see internal/iamcheck).
func (s *Store) removeWritten(ctx context.Context, key, versionID string) {
	cctx, cancel := cleanupContext(ctx)
	defer cancel()
	if err := s.Delete(cctx, key); err != nil {
		s.log.WarnContext(ctx, "blobstore: removing unverified object failed", "key", key, "version_id", versionID, "err", err)
	}
}
