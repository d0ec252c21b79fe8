package store

import "context"

// Exec runs raw SQL on s's database. Tests use it to reach below the API: a trigger that makes
// an insert fail, rows as an older binary wrote them.
func Exec(ctx context.Context, s *Store, query string, args ...any) error {
	return s.db.WithContext(ctx).Exec(query, args...).Error
}

// Count returns the one integer query selects.
func Count(ctx context.Context, s *Store, query string, args ...any) (int64, error) {
	var n int64
	err := s.db.WithContext(ctx).Raw(query, args...).Scan(&n).Error
	return n, err
}
