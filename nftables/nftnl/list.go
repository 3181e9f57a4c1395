package nftnl

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"runtime"
	"sync"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Names are the chains and named sets and maps of one table.
type Names struct {
	Chains []string
	Sets   []string
}

// ListNames lists the names of table's chains and named sets (maps
// included) in one family; a missing table holds nothing. It reads names
// only: at 110000 chains, nft's JSON listing of the same costs seconds
// and, decoded, about a hundred megabytes. It runs on a socket of its
// own, so a batch's unread answers never mix with the dump.
func (c *Conn) ListNames(ctx context.Context, f Family, table string) (Names, error) {
	nl, done, err := c.dumpSocket(ctx, f, table)
	if err != nil {
		return Names{}, err
	}
	defer done()
	var names Names
	// Chain dumps cannot be limited to a table; set dumps can.
	names.Chains, err = dumpNames(nl, f, unix.NFT_MSG_GETCHAIN, nil, table, unix.NFTA_CHAIN_TABLE, unix.NFTA_CHAIN_NAME, 0)
	if err == nil {
		names.Sets, err = dumpNames(nl, f, unix.NFT_MSG_GETSET, tableFilter(unix.NFTA_SET_TABLE, table), table, unix.NFTA_SET_TABLE, unix.NFTA_SET_NAME, unix.NFTA_SET_FLAGS)
	}
	switch {
	case errors.Is(err, unix.ENOENT): // no such table
		return Names{}, nil
	case err != nil:
		return Names{}, dumpError(ctx, f, table, err)
	}
	return names, nil
}

// VerdictChains lists the chains the elements of verdict map set in table
// go to or jump to, one per element in the kernel's order ("" for an
// element with another verdict). A reader of one map, not a table
// listing: nft list map loads the whole ruleset first (about 0.45 s of
// CPU at 10000 services), which a poller must not spend while the proxy
// it measures syncs.
func (c *Conn) VerdictChains(ctx context.Context, f Family, table, set string) ([]string, error) {
	if err := checkName("map", set); err != nil {
		return nil, err
	}
	nl, done, err := c.dumpSocket(ctx, f, table)
	if err != nil {
		return nil, err
	}
	defer done()
	var out []string
	for m, err := range receive(nl, elemDumpRequest(f, table, set)) {
		if err == nil {
			err = eachElement(m.Data[4:], func(el []byte) error {
				chain, err := nestedString(el, unix.NFTA_SET_ELEM_DATA, unix.NFTA_DATA_VERDICT, unix.NFTA_VERDICT_CHAIN)
				out = append(out, chain)
				return err
			})
		}
		if err != nil {
			return nil, dumpError(ctx, f, table, fmt.Errorf("elements of %s: %w", set, err))
		}
	}
	return out, nil
}

// elemDumpRequest asks for the elements of set in table.
func elemDumpRequest(f Family, table, set string) netlink.Message {
	var req attrs
	req.str(unix.NFTA_SET_ELEM_LIST_TABLE, table)
	req.str(unix.NFTA_SET_ELEM_LIST_SET, set)
	return dumpRequest(f, unix.NFT_MSG_GETSETELEM, req.b)
}

// nestedString is the string at path in the attributes b, each step but
// the last a nested attribute; "" where the path ends early.
func nestedString(b []byte, path ...uint16) (string, error) {
	for i, typ := range path {
		as, err := parseAttrs(b)
		if err != nil {
			return "", err
		}
		v, ok := findAttr(as, typ)
		if !ok {
			return "", nil
		}
		if i == len(path)-1 {
			return cString(v), nil
		}
		b = v
	}
	return "", nil
}

// dumpSocket opens a socket of its own for dumps of table, with ctx's
// deadline (or the Conn's timeout) and cancellation; done closes it.
func (c *Conn) dumpSocket(ctx context.Context, f Family, table string) (*netlink.Conn, func(), error) {
	if err := checkName("table", table); err != nil {
		return nil, nil, err
	}
	if f != IPv4 && f != IPv6 {
		return nil, nil, fmt.Errorf("family %d is neither IPv4 nor IPv6", f)
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, nil, errors.New("nf_tables listing on a closed Conn")
	}
	nl, err := c.dial()
	if err != nil {
		return nil, nil, err
	}
	stop, err := c.bound(ctx, nl)
	if err != nil {
		nl.Close()
		return nil, nil, err
	}
	return nl, func() { stop(); nl.Close() }, nil
}

// dumpError names a dump's error, and the cancellation behind it.
func dumpError(ctx context.Context, f Family, table string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		err = fmt.Errorf("%w (%w)", cerr, err)
	}
	return fmt.Errorf("list table %s %s: %w", f.IP(), table, err)
}

func tableFilter(typ uint16, table string) []byte {
	var a attrs
	a.str(typ, table)
	return a.b
}

// dumpRequest is a dump request of typ in family f with attributes req.
func dumpRequest(f Family, typ uint16, req []byte) netlink.Message {
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | typ), Flags: netlink.Request | netlink.Dump},
		Data:   append([]byte{byte(f), unix.NFNETLINK_V0, 0, 0}, req...),
	}
}

// dumpNames dumps one kind of object (typ, the request's attributes req)
// and returns the names (attribute nameAttr) of those in table (attribute
// tableAttr), leaving out anonymous sets (flags in flagsAttr, when not 0).
func dumpNames(nl *netlink.Conn, f Family, typ uint16, req []byte, table string, tableAttr, nameAttr, flagsAttr uint16) ([]string, error) {
	var out []string
	for m, err := range receive(nl, dumpRequest(f, typ, req)) {
		if err != nil {
			return nil, err
		}
		as, err := parseAttrs(m.Data[4:])
		if err != nil {
			return nil, fmt.Errorf("dumped object: %w", err)
		}
		name := attrString(as, nameAttr)
		anonymous := flagsAttr != 0 && attrU32(as, flagsAttr)&unix.NFT_SET_ANONYMOUS != 0
		if attrString(as, tableAttr) == table && name != "" && !anonymous {
			out = append(out, name)
		}
	}
	return out, nil
}

// RuleHandles lists the handles of chain's rules in table, in the chain's
// order: one dump, limited to the chain by the kernel.
func (c *Conn) RuleHandles(ctx context.Context, f Family, table, chain string) ([]uint64, error) {
	if err := checkName("chain", chain); err != nil {
		return nil, err
	}
	nl, done, err := c.dumpSocket(ctx, f, table)
	if err != nil {
		return nil, err
	}
	defer done()
	var req attrs
	req.str(unix.NFTA_RULE_TABLE, table)
	req.str(unix.NFTA_RULE_CHAIN, chain)
	var out []uint64
	for m, err := range receive(nl, dumpRequest(f, unix.NFT_MSG_GETRULE, req.b)) {
		if err != nil {
			return nil, dumpError(ctx, f, table, fmt.Errorf("rules of chain %s: %w", chain, err))
		}
		as, err := parseAttrs(m.Data[4:])
		if err != nil {
			return nil, fmt.Errorf("dumped rule: %w", err)
		}
		if attrString(as, unix.NFTA_RULE_TABLE) == table && attrString(as, unix.NFTA_RULE_CHAIN) == chain {
			out = append(out, attrU64(as, unix.NFTA_RULE_HANDLE))
		}
	}
	return out, nil
}

// ChainDigests returns the digest (see Digest) of every chain of table
// that holds rules: two dumps (sets, rules) and one per anonymous set,
// read as they stream in. A missing table holds nothing.
func (c *Conn) ChainDigests(ctx context.Context, f Family, table string) (map[string]Digest, error) {
	nl, done, err := c.dumpSocket(ctx, f, table)
	if err != nil {
		return nil, err
	}
	defer done()
	anon, err := c.dumpAnonymousSets(ctx, nl, f, table)
	if err == nil {
		var digests map[string]Digest
		if digests, err = dumpChainDigests(nl, f, table, anon); err == nil {
			return digests, nil
		}
	}
	if errors.Is(err, unix.ENOENT) {
		return map[string]Digest{}, nil
	}
	return nil, dumpError(ctx, f, table, err)
}

// dumpAnonymousSets returns the identity (setCanon.digest) of each of
// table's anonymous sets, by name: the one its userdata records, or else
// its elements'. Each set's elements take a dump of their own, and the
// kernel finds the set by walking the table's set list, twice: at 10000
// services that is seconds of kernel time, spread here over up to
// maxDumpSockets sockets, one per CPU.
func (c *Conn) dumpAnonymousSets(ctx context.Context, nl *netlink.Conn, f Family, table string) (map[string][]byte, error) {
	msgs, err := nl.Execute(dumpRequest(f, unix.NFT_MSG_GETSET, tableFilter(unix.NFTA_SET_TABLE, table)))
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	var sets []namedSet
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		as, err := parseAttrs(m.Data[4:])
		if err != nil {
			return nil, fmt.Errorf("dumped set: %w", err)
		}
		h, err := parseSetHeader(as)
		switch {
		case err != nil:
			return nil, fmt.Errorf("set %s: %w", h.name, err)
		case h.flags&unix.NFT_SET_ANONYMOUS == 0 || attrString(as, unix.NFTA_SET_TABLE) != table:
		case h.identity != nil:
			out[h.name] = h.identity
		default:
			sets = append(sets, namedSet{name: h.name, s: &setCanon{decl: h.decl}})
		}
	}
	workers := min(maxDumpSockets, runtime.NumCPU(), max(1, len(sets)/100))
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		part := sets[w*len(sets)/workers : (w+1)*len(sets)/workers]
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[w] = c.dumpElements(ctx, f, table, part)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, ns := range sets {
		out[ns.name] = ns.s.digest()
	}
	return out, nil
}

// maxDumpSockets bounds the sockets dumping anonymous sets at once.
const maxDumpSockets = 4

type namedSet struct {
	name string
	s    *setCanon
}

// dumpElements adds each set's elements, dumped on a socket of its own.
func (c *Conn) dumpElements(ctx context.Context, f Family, table string, sets []namedSet) error {
	nl, done, err := c.dumpSocket(ctx, f, table)
	if err != nil {
		return err
	}
	defer done()
	for _, ns := range sets {
		c.setDumps.Add(1)
		for m, err := range receive(nl, elemDumpRequest(f, table, ns.name)) {
			if err == nil {
				err = ns.s.addElems(m.Data[4:])
			}
			if err != nil {
				return fmt.Errorf("elements of %s: %w", ns.name, err)
			}
		}
	}
	return nil
}

// dumpChainDigests streams table's rules into one digest per chain. A
// dump lists each chain's rules together; a chain seen again later (the
// table changed during the dump) gets no digest, so it is rewritten.
func dumpChainDigests(nl *netlink.Conn, f Family, table string, anon map[string][]byte) (map[string]Digest, error) {
	resolve := func(name string, _ uint32) ([]byte, error) {
		d, ok := anon[name]
		if !ok {
			return nil, fmt.Errorf("rule refers to unlisted set %s", name)
		}
		return d, nil
	}
	out := map[string]Digest{}
	seen := map[string]bool{}
	var chain string
	var h chainHasher
	finish := func() {
		if chain != "" && !seen[chain] {
			out[chain] = h.sum()
		} else {
			delete(out, chain)
		}
		seen[chain] = true
	}
	for m, err := range receive(nl, dumpRequest(f, unix.NFT_MSG_GETRULE, tableFilter(unix.NFTA_RULE_TABLE, table))) {
		if err != nil {
			return nil, err
		}
		as, err := parseAttrs(m.Data[4:])
		if err != nil {
			return nil, fmt.Errorf("dumped rule: %w", err)
		}
		if attrString(as, unix.NFTA_RULE_TABLE) != table {
			continue
		}
		if c := attrString(as, unix.NFTA_RULE_CHAIN); c != chain {
			finish()
			chain, h = c, newChainHasher()
		}
		r, err := canonRuleAttrs(as, resolve)
		if err != nil {
			return nil, fmt.Errorf("rule in chain %s: %w", chain, err)
		}
		h.add(r)
	}
	finish()
	delete(out, "")
	return out, nil
}

// receive sends a dump request and yields its answers as they arrive.
func receive(nl *netlink.Conn, req netlink.Message) iter.Seq2[netlink.Message, error] {
	return func(yield func(netlink.Message, error) bool) {
		if _, err := nl.Send(req); err != nil {
			yield(netlink.Message{}, err)
			return
		}
		for m, err := range nl.ReceiveIter() {
			if err == nil && len(m.Data) < 4 {
				err = fmt.Errorf("dumped object of %d bytes", len(m.Data))
			}
			if !yield(m, err) || err != nil {
				return
			}
		}
	}
}
