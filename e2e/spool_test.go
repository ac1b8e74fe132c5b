package e2e_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/devstack"
	"github.com/geoblob/geoblob/internal/pgcluster"
	"github.com/geoblob/geoblob/internal/samples"
	"github.com/geoblob/geoblob/internal/sqsspool"
)

func spoolCounts(t testing.TB) sqsspool.SpoolCounts {
	t.Helper()
	c, err := sqsspool.CountSpool(fx.settings.SpoolDir(), fx.settings.DeadLetterDir())
	require.NoError(t, err)
	return c
}

// TestSpoolSurvivesRestartDuringPostgresOutage stops PostgreSQL, uploads,
// lets every message fail once, stops event delivery with the messages in
// the spool, brings PostgreSQL back and starts delivery again: every
// message is delivered from the spool (its receive count carried over)
// and the secondary converges.
func TestSpoolSurvivesRestartDuringPostgresOutage(t *testing.T) {
	ctx := t.Context()
	pg := fx.stack.Postgres()
	m := newModel()
	require.NoError(t, pg.Stop(ctx))
	ensurePostgres := func() {
		if _, err := pgcluster.Open(context.Background(), pg.Dir(), nil); err != nil {
			_, _ = pgcluster.Start(context.Background(), pgcluster.Options{Dir: pg.Dir(), Port: pg.Port(), FsyncOff: true})
		}
	}
	t.Cleanup(ensurePostgres)
	keys := faultKeys(t, "spool", 10)
	apply(t, m, putOps(t, keys, 1200))
	require.Eventually(t, func() bool { return spoolCounts(t).Retrying == len(keys) }, 20*time.Second, 20*time.Millisecond,
		"every message fails while PostgreSQL is down and stays spooled")

	require.NoError(t, fx.runner.Close(ctx))
	restarted := false
	t.Cleanup(func() { // a failure below must not leave the other tests without a receiver
		if !restarted {
			ensurePostgres()
			_, _ = fx.runner.StartEvents(context.Background(), fx.settings)
		}
	})
	c := spoolCounts(t)
	require.Equal(t, len(keys), c.Queued, "the spool holds every undelivered message with the worker stopped")
	require.Zero(t, c.DeadLetters)

	_, err := pgcluster.Start(ctx, pgcluster.Options{Dir: pg.Dir(), Port: pg.Port(), FsyncOff: true})
	require.NoError(t, err)
	first := fx.rec.len()
	_, err = fx.runner.StartEvents(ctx, fx.settings)
	require.NoError(t, err)
	restarted = true
	waitConverged(t, m, time.Minute)
	assertBuckets(t, m)
	assert.Zero(t, spoolCounts(t).Queued, "spool drained")
	redelivered := 0
	for _, d := range fx.rec.since(first) {
		if d.Err == nil && strings.Contains(string(d.Body), "/spool-") {
			redelivered++
			assert.GreaterOrEqual(t, d.ReceiveCount, 2, "receive count survives the restart")
		}
	}
	assert.Equal(t, len(keys), redelivered)
}

// TestMalformedMessageIsDeadLettered posts a body no handler can decode:
// the real handler reports it in batchItemFailures on every receive, and
// after maxReceiveCount receives it lands in the dead-letter directory,
// which `geoblob status` reports.
func TestMalformedMessageIsDeadLettered(t *testing.T) {
	ctx := t.Context()
	before := spoolCounts(t).DeadLetters
	first := fx.rec.len()
	body := `{"EventName":"s3:ObjectCreated:Put","broken":` // not JSON
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, fx.settings.EventsURL(), strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+fx.settings.EventsToken) // as MinIO's webhook sends it
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "spooled: the receiver does not judge bodies")
	require.Eventually(t, func() bool { return spoolCounts(t).DeadLetters == before+1 }, 30*time.Second, 50*time.Millisecond)

	var receives []int
	var id string
	for _, d := range fx.rec.since(first) {
		if string(d.Body) == body {
			require.ErrorIs(t, d.Err, sqsspool.ErrHandler)
			receives = append(receives, d.ReceiveCount)
			id = d.MessageID
		}
	}
	assert.Equal(t, []int{1, 2, 3, 4, 5}, receives, "delivered maxReceiveCount times, then dead-lettered")
	dead, err := os.ReadFile(filepath.Join(fx.settings.DeadLetterDir(), id+".5.json"))
	require.NoError(t, err)
	assert.Equal(t, body, string(dead), "the dead letter keeps the body unchanged")
	reason, err := os.ReadFile(filepath.Join(fx.settings.DeadLetterDir(), id+".reason.txt"))
	require.NoError(t, err)
	assert.Contains(t, string(reason), "batchItemFailures")
	var out strings.Builder
	require.NoError(t, fx.settings.PrintStatus(ctx, &out))
	assert.Contains(t, out.String(), "dead letters in "+fx.settings.DeadLetterDir())
}

// TestPerKeyOrderWithTheRealHandler changes each of several keys many
// times in a row (concurrently across keys) and checks that the handler
// got each key's events one at a time, in the order of the requests, and
// that the result is the last write.
func TestPerKeyOrderWithTheRealHandler(t *testing.T) {
	ctx := t.Context()
	m := newModel()
	keys := faultKeys(t, "order", 6)
	first := fx.rec.len()
	primary := fx.settings.Bucket(devstack.Primary)
	var wg sync.WaitGroup
	for i, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range 5 {
				var err error
				if round == 2 {
					err = primary.Delete(ctx, k)
				} else {
					err = primary.Put(ctx, k, content(t, k, 900+i*10+round), samples.ContentType(k))
				}
				assert.NoError(t, err)
			}
		}()
	}
	wg.Wait()
	for i, k := range keys {
		m.put(k, content(t, k, 900+i*10+4))
	}
	waitConverged(t, m, time.Minute)
	assertBuckets(t, m)

	type handled struct {
		id, sequencer string
		from, to      time.Time
	}
	collect := func() map[string][]handled {
		perKey := map[string][]handled{}
		for _, d := range fx.rec.since(first) {
			if d.Err != nil {
				continue
			}
			var ev events.S3Event
			if json.Unmarshal(d.Body, &ev) != nil || len(ev.Records) != 1 {
				continue
			}
			k := ev.Records[0].S3.Object.URLDecodedKey
			perKey[k] = append(perKey[k], handled{d.MessageID, ev.Records[0].S3.Object.Sequencer, d.Received, d.At})
		}
		return perKey
	}
	// the queue records a delivery after its invocation returns, which can
	// be after the registry shows the last write: wait for the records
	var perKey map[string][]handled
	require.Eventually(t, func() bool {
		perKey = collect()
		for _, k := range keys {
			if len(perKey[k]) < 5 {
				return false
			}
		}
		return true
	}, 10*time.Second, 20*time.Millisecond, "every request's delivery recorded")
	for _, k := range keys {
		list := perKey[k]
		require.Len(t, list, 5, "%s: one delivery per request", k)
		sort.Slice(list, func(i, j int) bool { return list[i].from.Before(list[j].from) })
		for i := 1; i < len(list); i++ {
			assert.Less(t, list[i-1].id, list[i].id, "%s: handled out of spool order", k)
			assert.Less(t, list[i-1].sequencer, list[i].sequencer, "%s: handled out of request order", k)
			assert.False(t, list[i].from.Before(list[i-1].to), "%s: two events in flight at once", k)
		}
	}
}
