package protocols_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tcpactor/tcpactor/protocols"
)

// qtReadQStrings reads each hex-encoded QDataStream record of stdin with
// Qt's own `QDataStream >> QString` and prints the string read, as
// hex-encoded UTF-8, or "ERROR" when the stream is not Ok or has bytes left.
const qtReadQStrings = `
import sys
from PyQt6.QtCore import QByteArray, QDataStream, QIODevice
for line in sys.stdin:
    data = QByteArray(bytes.fromhex(line.strip()))  # the stream reads it: keep it alive
    s = QDataStream(data, QIODevice.OpenModeFlag.ReadOnly)
    v = s.readQString()
    ok = s.status() == QDataStream.Status.Ok and s.atEnd()
    print(v.encode("utf-8").hex() if ok else "ERROR", flush=True)
`

// TestQStringIsWhatQtsQDataStreamReads checks protocols.QString against the
// real Qt (PyQt6): for the strings of FuzzQStringRoundTrip's kind — ASCII,
// Latin-1, CJK, outside the BMP, invalid UTF-8, Qt's fortunes — Qt's
// QDataStream reads back exactly the string, and nothing is left over.
func TestQStringIsWhatQtsQDataStreamReads(t *testing.T) {
	requirePyQt(t)
	in := append([]string{"", "a", "héllo wörld", "日本語", "\U0001F600 outside the BMP", "\x00nul", "\xff\xfe invalid",
		"\xed\xa0\x80 a surrogate half", "\uffff\ufffe", strings.Repeat("long ", 4000)}, protocols.Fortunes...)
	var stdin bytes.Buffer
	for _, s := range in {
		stdin.WriteString(hex.EncodeToString(protocols.QString(s)) + "\n")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", "-c", qtReadQStrings)
	cmd.Stdin = &stdin
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("Qt reader: %v\n%s", err, stderr.String())
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(got) != len(in) {
		t.Fatalf("Qt read %d strings, want %d:\n%s", len(got), len(in), out)
	}
	for i, s := range in {
		want := hex.EncodeToString([]byte(string([]rune(s))))
		if got[i] != want {
			t.Errorf("QString(%.40q): Qt read %.80s, want %.80s", s, got[i], want)
		}
	}
}

// requirePyQt skips without PyQt6, or fails when CI is "true": CI installs
// python3-pyqt6 (.ci/run).
func requirePyQt(t *testing.T) {
	t.Helper()
	out, err := exec.Command("/usr/bin/python3", "-c", "import PyQt6.QtCore").CombinedOutput()
	if err == nil {
		return
	}
	msg := "PyQt6 is not available to /usr/bin/python3 (Debian's python3-pyqt6): " + strings.TrimSpace(string(out))
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
