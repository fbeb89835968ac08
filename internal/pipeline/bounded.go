package pipeline

import (
	"fmt"
	"io"
	"os"
)

// Bounds on files a run's commands write and the engine then reads: a
// report or an export file is untrusted input (a pull request writes it), so
// it must be a regular file (no symbolic link to a host file or a device)
// of a bounded size — a 1 TiB sparse file must not take the daemon down.
const (
	maxReportBytes = 64 << 20
	maxExportBytes = 1 << 20
)

// readBounded reads the regular file path, refusing a link, a device, a
// FIFO, or more than limit bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s): commands must write a plain file there", path, fi.Mode().Type())
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s is %d bytes, over the limit of %d", path, fi.Size(), limit)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s grew over the limit of %d bytes while it was read", path, limit)
	}
	return data, nil
}
