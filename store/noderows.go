package store

import (
	"context"
	"strings"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// syncBatch is the number of rows one INSERT writes.
const syncBatch = 100

// syncNodeRows writes a node's changes to a table of rows it holds (ringing calls, watched
// extensions, dialog states) in one transaction: the node's rows whose key columns keyCols take
// the values of one of remove are deleted, then rows are inserted, or their columns update
// changed when node's row of the same key is there. rows must not hold a key twice (one
// statement cannot upsert a row twice on Postgres); a key in both is written.
func syncNodeRows[R any](ctx context.Context, s *Store, op, table, node string, keyCols []string, remove [][]any, rows []R,
	update []string) error {
	if len(remove) == 0 && len(rows) == 0 {
		return nil
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	conflict := []clause.Column{{Name: "node_id"}}
	for _, c := range keyCols {
		conflict = append(conflict, clause.Column{Name: c})
	}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if len(remove) > 0 {
			del := "DELETE FROM " + table + " WHERE node_id = ? AND (" + strings.Join(keyCols, ", ") + ") IN ?"
			if err := tx.Exec(del, node, remove).Error; err != nil {
				return err
			}
		}
		if len(rows) == 0 {
			return nil
		}
		return tx.Clauses(clause.OnConflict{Columns: conflict, DoUpdates: clause.AssignmentColumns(update)}).
			CreateInBatches(rows, syncBatch).Error
	})
	return mapErr(op, err)
}
