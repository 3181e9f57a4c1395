package netfilter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Making multi-table restores all-or-nothing.
//
// iptables-restore (nft and legacy alike) commits each "*table ... COMMIT"
// block on its own: when the nat block of a sync fails, the filter block
// before it is already in the kernel, and the node runs with half a sync.
// TableRollback wraps a Restorer so that a failed restore leaves every
// table as it was:
//   - the block that commits last needs no undo: a block is atomic, so if
//     it fails it changed nothing. Callers therefore write the table that
//     is expensive to read last: the iptables proxier and cleanup put nat
//     (110k chains at 10k services) after filter and mangle, which hold only
//     top-level chains and what other software keeps there;
//   - before the restore, the chains the earlier blocks change are read:
//     from what the caller knows (the iptables Proxier's memory of the
//     chains it wrote, on partial syncs; the Saves IPVS mode reads anyway
//     to find missing jumps, and cleanup to find its chains), otherwise
//     listed one by one ("iptables -S CHAIN", concurrently; a Save of any
//     table makes iptables-nft fetch the whole ruleset)
//     (rollback_snapshot.go);
//   - after a failure, one restore puts back, from the snapshots, every
//     chain the earlier blocks touch: chains that existed are flushed and
//     refilled (built-in chains with "-F" and their policy), chains the
//     input created are deleted. Blocks the failed restore never reached
//     are rewritten to what they already hold, which is harmless.
// An input with at most one block that changes anything goes through
// untouched, without a Save, so the common partial sync (only nat changes)
// costs nothing extra. When a snapshot cannot be read, the restore still
// runs (refusing it would freeze the rules) and a failure says that earlier
// tables may stay applied. Rules another program adds to a touched chain
// between the snapshot and a rollback are lost with the rollback (the
// window is one restore). TableRollback keeps no state between calls.

// TableRollback is a Restorer whose Restore leaves every table as it was
// when the input fails (see above). Save passes through.
type TableRollback struct {
	inner Restorer
}

// NewTableRollback wraps r.
func NewTableRollback(r Restorer) *TableRollback { return &TableRollback{inner: r} }

// Save reads a table from the wrapped Restorer.
func (t *TableRollback) Save(ctx context.Context, table string) ([]byte, error) {
	return t.inner.Save(ctx, table)
}

// restoreBlock is one "*table ... COMMIT" block of an input.
type restoreBlock struct {
	table string
	text  []byte // from the "*table" line through "COMMIT\n"
	// changes is false for a block with no statement (only comments).
	changes bool
}

// Restore applies data; on failure it restores the tables the input's
// earlier blocks touched and returns the failure, saying what was rolled back.
func (t *TableRollback) Restore(ctx context.Context, data []byte) error {
	return t.RestoreKnown(ctx, data, Known{})
}

// RestoreKnown is Restore with what the caller knows the kernel holds, so
// that the snapshot reads less (nothing, when it knows every touched chain).
func (t *TableRollback) RestoreKnown(ctx context.Context, data []byte, known Known) error {
	blocks, ok := splitRestoreBlocks(data)
	if !ok {
		return t.inner.Restore(ctx, data) // let iptables-restore name the error
	}
	blocks = slices.DeleteFunc(blocks, func(b restoreBlock) bool { return !b.changes })
	if len(blocks) <= 1 {
		return t.inner.Restore(ctx, data)
	}
	snaps, snapErr := t.snapshot(ctx, blocks[:len(blocks)-1], known)
	err := t.inner.Restore(ctx, data)
	if err == nil {
		return nil
	}
	if snapErr != nil {
		return errors.Join(err, fmt.Errorf("earlier tables may stay applied: %w", snapErr))
	}
	undo := undoInput(snaps)
	if rbErr := t.inner.Restore(context.WithoutCancel(ctx), undo); rbErr != nil {
		return errors.Join(err, fmt.Errorf("roll back tables %s: %w", tableNames(snaps), rbErr))
	}
	return fmt.Errorf("%w (tables %s rolled back)", err, tableNames(snaps))
}

func tableNames(snaps []*tableSnapshot) string {
	names := make([]string, len(snaps))
	for i, s := range snaps {
		names[i] = s.table
	}
	return strings.Join(names, ", ")
}

// splitRestoreBlocks cuts iptables-restore input into its table blocks
// without scanning every line: blocks end at "COMMIT" lines, found with
// bytes.Index, and only block headers and (for small blocks) bodies are
// looked at. ok is false for input it does not understand.
func splitRestoreBlocks(data []byte) (blocks []restoreBlock, ok bool) {
	rest := data
	for len(bytes.TrimSpace(rest)) > 0 {
		start := skipCommentLines(rest)
		if start >= len(rest) {
			break
		}
		rest = rest[start:]
		header, _, found := bytes.Cut(rest, []byte("\n"))
		if !found || len(header) < 2 || header[0] != '*' {
			return nil, false
		}
		end := commitEnd(rest)
		if end < 0 {
			return nil, false
		}
		body := rest[len(header)+1 : end-len("COMMIT\n")]
		blocks = append(blocks, restoreBlock{table: string(header[1:]), text: rest[:end:end], changes: hasStatement(body)})
		rest = rest[end:]
	}
	return blocks, true
}

// commitEnd is the offset just past the first line "COMMIT" of b, -1 if none.
func commitEnd(b []byte) int {
	off := 0
	for {
		i := bytes.Index(b[off:], []byte("\nCOMMIT"))
		if i < 0 {
			return -1
		}
		end := off + i + len("\nCOMMIT")
		switch {
		case end == len(b):
			return -1 // iptables-restore wants the newline too; let it complain
		case b[end] == '\n':
			return end + 1
		}
		off = end
	}
}

// skipCommentLines returns the offset of the first line of b that is not
// blank or a "#" comment.
func skipCommentLines(b []byte) int {
	off := 0
	for off < len(b) {
		line, _, _ := bytes.Cut(b[off:], []byte("\n"))
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			return off
		}
		off += len(line) + 1
	}
	return off
}

// hasStatement reports whether a block body holds anything but comments.
func hasStatement(body []byte) bool {
	return skipCommentLines(body) < len(body)
}
