// Package visits counts visits in SQLite through cgo: the C library libsqlite3 is linked dynamically
// (DT_NEEDED libsqlite3.so.0), so the image must carry it, libc and the dynamic loader.
package visits

/*
#cgo LDFLAGS: -lsqlite3
#include <stdlib.h>
#include <sqlite3.h>

// one statement with one optional text parameter, returning the first column of the first row as an integer
static int exec_int(sqlite3 *db, const char *sql, const char *arg, long long *out, const char **err) {
	sqlite3_stmt *st = 0;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, 0);
	if (rc != SQLITE_OK) { *err = sqlite3_errmsg(db); return rc; }
	if (arg) sqlite3_bind_text(st, 1, arg, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) { *out = sqlite3_column_int64(st, 0); rc = SQLITE_OK; }
	else if (rc == SQLITE_DONE) { rc = SQLITE_OK; }
	else { *err = sqlite3_errmsg(db); }
	sqlite3_finalize(st);
	return rc;
}
*/
import "C"

import (
	"fmt"
	"sync"
	"unsafe"
)

// DB is one SQLite connection; cgo calls on it are serialized.
type DB struct {
	mu sync.Mutex
	db *C.sqlite3
}

// Version is the version of the libsqlite3 the process loaded (not the one it was compiled against).
func Version() string { return C.GoString(C.sqlite3_libversion()) }

// Open opens an in-memory database (the VM's root filesystem is read-only) and creates the table.
func Open() (*DB, error) {
	name := C.CString(":memory:")
	defer C.free(unsafe.Pointer(name))
	var db *C.sqlite3
	if rc := C.sqlite3_open(name, &db); rc != C.SQLITE_OK {
		return nil, fmt.Errorf("sqlite3_open: code %d", int(rc))
	}
	d := &DB{db: db}
	if _, err := d.exec("CREATE TABLE visits (name TEXT PRIMARY KEY, n INTEGER NOT NULL)", nil); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *DB) exec(sql string, arg *string) (int64, error) {
	csql := C.CString(sql)
	defer C.free(unsafe.Pointer(csql))
	var carg *C.char
	if arg != nil {
		carg = C.CString(*arg)
		defer C.free(unsafe.Pointer(carg))
	}
	var out C.longlong
	var cerr *C.char
	if rc := C.exec_int(d.db, csql, carg, &out, &cerr); rc != C.SQLITE_OK {
		return 0, fmt.Errorf("sqlite: %s (code %d)", C.GoString(cerr), int(rc))
	}
	return int64(out), nil
}

// Visit counts one visit of name and returns how many there have been.
func (d *DB) Visit(name string) (int64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.exec("INSERT INTO visits (name, n) VALUES (?1, 1) ON CONFLICT(name) DO UPDATE SET n = n + 1", &name); err != nil {
		return 0, err
	}
	return d.exec("SELECT n FROM visits WHERE name = ?1", &name)
}
