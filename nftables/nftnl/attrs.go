package nftnl

import (
	"encoding/binary"
	"errors"
	"math"

	"golang.org/x/sys/unix"
)

// attrs appends netlink attributes (length, type, value, padded to 4 bytes)
// to one buffer. It is written here rather than taken from
// mdlayher/netlink's MarshalAttributes because the encoder needs each
// element's byte offset in its message: the kernel's extended ack names a
// rejected element only by offset. The first error (an attribute longer
// than its 16-bit length field) is latched.
type attrs struct {
	b   []byte
	err error
}

var errAttrTooLong = errors.New("netlink attribute longer than 65535 bytes")

func (a *attrs) put(typ uint16, data []byte) {
	if 4+len(data) > math.MaxUint16 {
		a.fail(errAttrTooLong)
		return
	}
	a.b = binary.NativeEndian.AppendUint16(a.b, uint16(4+len(data)))
	a.b = binary.NativeEndian.AppendUint16(a.b, typ)
	a.b = append(a.b, data...)
	a.pad()
}

// str puts s NUL-terminated, as the kernel's NLA_STRING names expect.
func (a *attrs) str(typ uint16, s string) {
	a.put(typ, append([]byte(s), 0))
}

// u32 and u64 put big-endian integers (NLA_BE32, NLA_BE64).
func (a *attrs) u32(typ uint16, v uint32) { a.put(typ, binary.BigEndian.AppendUint32(nil, v)) }
func (a *attrs) u64(typ uint16, v uint64) { a.put(typ, binary.BigEndian.AppendUint64(nil, v)) }

// nest opens a nested attribute; end closes it. The offset nest returns
// is where the attribute starts in the buffer.
func (a *attrs) nest(typ uint16) int {
	start := len(a.b)
	a.b = binary.NativeEndian.AppendUint16(a.b, 0)
	a.b = binary.NativeEndian.AppendUint16(a.b, typ|unix.NLA_F_NESTED)
	return start
}

func (a *attrs) end(start int) {
	n := len(a.b) - start
	if n > math.MaxUint16 {
		a.fail(errAttrTooLong)
		return
	}
	binary.NativeEndian.PutUint16(a.b[start:], uint16(n))
}

func (a *attrs) pad() {
	for len(a.b)%4 != 0 {
		a.b = append(a.b, 0)
	}
}

func (a *attrs) fail(err error) {
	if a.err == nil {
		a.err = err
	}
}
