package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/geoblob/geoblob/shared/api"
	"github.com/geoblob/geoblob/shared/registry"
)

// runDRReport is `geoblob dr-report [-format table|json|csv] [-type T]
// [-category C] [-limit N] [-after CURSOR] [-url URL | -aws URL]`: the
// operator API's GET /api/v1/dr-report through the same client as
// status -json (in-process on the local stack, over HTTP, or signed with
// SigV4 for a deployed stack's function URL).
func runDRReport(ctx context.Context, fs *flag.FlagSet, dir string, base *string, args []string, stdout io.Writer, logger *slog.Logger) error {
	format := fs.String("format", "table", "table, json or csv")
	awsURL := fs.String("aws", "", "function URL of a deployed stack (output OperatorApiUrl): requests signed with your AWS credentials")
	typ := fs.String("type", "", "list only objects of this data type")
	cat := fs.String("category", "", "list only objects of this risk category: "+categoryNames())
	limit := fs.Int("limit", registry.DefaultDRListLimit, "objects at risk to list")
	after := fs.String("after", "", "cursor of the next page (printed after a page)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *awsURL != "" {
		*base = *awsURL
	}
	c, done, err := newAPIClient(ctx, dir, *base, logger)
	if err != nil {
		return err
	}
	defer done()
	q := url.Values{}
	for k, v := range map[string]string{"data_type": *typ, "category": *cat, "after": *after} {
		if v != "" {
			q.Set(k, v)
		}
	}
	q.Set("limit", strconv.Itoa(*limit))
	switch *format {
	case "json", "csv":
		q.Set("format", *format)
		var raw json.RawMessage
		if err := c.call(ctx, "GET", api.DRReportPath+"?"+q.Encode(), nil, &raw); err != nil {
			return err
		}
		_, err := stdout.Write(raw)
		return err
	case "table":
		return show(ctx, c, api.DRReportPath+"?"+q.Encode(), false, stdout, writeDRReport)
	}
	return fmt.Errorf("dr-report: -format %q (want table, json or csv)", *format)
}

func categoryNames() string {
	names := make([]string, len(registry.RiskCategories))
	for i, c := range registry.RiskCategories {
		names[i] = string(c)
	}
	return strings.Join(names, ", ")
}

func ibytes(n int64) string { return humanize.IBytes(uint64(max(n, 0))) }

func seconds(s float64) string {
	return (time.Duration(s * float64(time.Second))).Round(time.Second).String()
}

// writeDRReport prints the report as tables: the summary, per type and
// category, the last passes, and the objects at risk.
func writeDRReport(out io.Writer, rep registry.DRReport) error {
	fmt.Fprintf(out, "DR readiness at %s\n", rep.GeneratedAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(out, "RPO (oldest unsynced)  %s\n", seconds(rep.RPOSeconds))
	fmt.Fprintf(out, "objects at risk        %s (%s live, %s stale of deleted objects)\n",
		humanize.Comma(rep.ObjectsAtRisk), ibytes(rep.BytesAtRisk), ibytes(rep.StaleBytes))
	v := rep.Verification
	oldest := "never"
	if v.OldestVerifiedAt != nil {
		oldest = v.OldestVerifiedAt.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(out, "verification coverage  %.1f%% (%s of %s synced verified within %s; oldest verification %s)\n",
		v.Share*100, humanize.Comma(v.VerifiedWithinInterval), humanize.Comma(v.Synced), seconds(rep.ReverifyIntervalSeconds), oldest)
	for _, p := range []struct {
		name string
		p    *registry.Pass
	}{{"backfill", rep.LastBackfill}, {"verify", rep.LastVerify}} {
		label := fmt.Sprintf("%-23s", "last "+p.name+" pass")
		switch {
		case p.p == nil:
			fmt.Fprintf(out, "%snever ran\n", label)
		case p.p.LastOKAt == nil:
			fmt.Fprintf(out, "%snever succeeded (last: %s)\n", label, p.p.Error)
		default:
			fmt.Fprintf(out, "%ssucceeded %s", label, p.p.LastOKAt.UTC().Format(time.RFC3339))
			if !p.p.OK {
				fmt.Fprintf(out, "; the last one failed: %s", p.p.Error)
			}
			fmt.Fprintln(out)
		}
	}
	fmt.Fprintln(out)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "TYPE\tRPO\tAT RISK\tBYTES\tSTALE BYTES\t"
	for _, c := range registry.RiskCategories {
		head += strings.ToUpper(strings.ReplaceAll(string(c), "_", " ")) + "\t"
	}
	fmt.Fprintln(w, head+"VERIFIED\t")
	row := func(name string, rpo float64, objects, bytes, stale int64, cats map[registry.RiskCategory]registry.RiskFigure, cov registry.Coverage) {
		line := fmt.Sprintf("%s\t%s\t%d\t%s\t%s\t", name, seconds(rpo), objects, ibytes(bytes), ibytes(stale))
		for _, c := range registry.RiskCategories {
			f := cats[c]
			line += fmt.Sprintf("%d (%s)\t", f.Objects, ibytes(f.Bytes))
		}
		fmt.Fprintln(w, line+fmt.Sprintf("%.1f%%\t", cov.Share*100))
	}
	for _, t := range rep.Types {
		row(t.DataType, t.RPOSeconds, t.ObjectsAtRisk, t.BytesAtRisk, t.StaleBytes, t.Categories, t.Verification)
	}
	row("total", rep.RPOSeconds, rep.ObjectsAtRisk, rep.BytesAtRisk, rep.StaleBytes, rep.Categories, rep.Verification)
	if err := w.Flush(); err != nil {
		return err
	}
	if len(rep.Objects) == 0 {
		fmt.Fprintln(out, "\nno objects at risk match")
		return nil
	}
	fmt.Fprintf(out, "\nobjects at risk (%s matching):\n", humanize.Comma(rep.Matching))
	w = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "TYPE\tCATEGORY\tSTATE\tSIZE\tWAITING\tKEY\tFAILURE")
	for _, o := range rep.Objects {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%q\t%s\n", o.DataType, o.Category, o.State, ibytes(o.Size), seconds(o.AgeSeconds), o.ObjectKey, o.Failure)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if rep.More > 0 {
		fmt.Fprintf(out, "%s more: add -after %s\n", humanize.Comma(rep.More), rep.Next)
	}
	return nil
}
