package backfill

import "errors"

// Sentinel errors; test with errors.Is.
var (
	// ErrInvalidConfig: a GEOBLOB_BACKFILL_* variable or request field is unusable.
	ErrInvalidConfig = errors.New("backfill: invalid configuration")
	// ErrInventory: an S3 Inventory manifest or data file could not be used.
	ErrInventory = errors.New("backfill: unusable inventory")
	// ErrInvalidRow: an inventory row that can never be registered (key
	// not decodable, not UTF-8, with NUL or over 1,024 bytes; size negative
	// or not a number). The scan reports it and goes on with the next row.
	ErrInvalidRow = errors.New("backfill: invalid inventory row")
	// ErrBusy: another invocation holds the reconcile lease of this source.
	ErrBusy = errors.New("backfill: cursor leased by another invocation")
	// ErrNotQuarantined: resync was asked for a row that is not quarantined.
	ErrNotQuarantined = errors.New("backfill: row not quarantined")
)
