package ipvs

// A partial sync changes a few entries of maps that hold one entry per
// service port (or per virtual server, per set member). Cloning those maps
// to keep the old state for a failed sync made every partial sync cost as
// much as the whole table; a journal instead remembers the first value of
// each key it touches, so a sync edits the maps in place and either keeps
// the edits (Commit) or undoes them (Rollback), at the cost of the keys it
// touched.

// journal is a map whose edits since the last Commit can be undone.
type journal[K comparable, V any] struct {
	m    map[K]V
	prev map[K]prior[V]
}

// prior is a key's value (and presence) before its first edit.
type prior[V any] struct {
	v  V
	ok bool
}

func newJournal[K comparable, V any]() *journal[K, V] {
	return &journal[K, V]{m: map[K]V{}}
}

func (j *journal[K, V]) get(k K) (V, bool) {
	v, ok := j.m[k]
	return v, ok
}

func (j *journal[K, V]) remember(k K) {
	if _, seen := j.prev[k]; seen {
		return
	}
	if j.prev == nil {
		j.prev = map[K]prior[V]{}
	}
	v, ok := j.m[k]
	j.prev[k] = prior[V]{v, ok}
}

func (j *journal[K, V]) set(k K, v V) {
	j.remember(k)
	j.m[k] = v
}

func (j *journal[K, V]) delete(k K) {
	if _, ok := j.m[k]; !ok {
		return
	}
	j.remember(k)
	delete(j.m, k)
}

func (j *journal[K, V]) len() int { return len(j.m) }

// changed calls f for every key edited since the last Commit whose presence
// or value may differ, with its first value.
func (j *journal[K, V]) changed(f func(k K, before prior[V])) {
	for k, p := range j.prev {
		f(k, p)
	}
}

// commit keeps the edits.
func (j *journal[K, V]) commit() { j.prev = nil }

// rollback undoes every edit since the last commit.
func (j *journal[K, V]) rollback() {
	for k, p := range j.prev {
		if p.ok {
			j.m[k] = p.v
		} else {
			delete(j.m, k)
		}
	}
	j.prev = nil
}

// refCount counts, per member, how many service ports want it; a member is
// present while its count is positive. Its journal tells which members
// appeared or disappeared since the last commit.
type refCount[K comparable] struct {
	*journal[K, int]
}

func newRefCount[K comparable]() refCount[K] { return refCount[K]{newJournal[K, int]()} }

func (r refCount[K]) inc(k K) { r.set(k, r.m[k]+1) }

func (r refCount[K]) dec(k K) {
	if n := r.m[k]; n > 1 {
		r.set(k, n-1)
	} else {
		r.delete(k)
	}
}

func (r refCount[K]) has(k K) bool { _, ok := r.m[k]; return ok }

// transitions lists the members that appeared and disappeared since the
// last commit (a member removed and added back is in neither).
func (r refCount[K]) transitions() (appeared, gone []K) {
	r.changed(func(k K, before prior[int]) {
		_, now := r.m[k]
		switch {
		case now && !before.ok:
			appeared = append(appeared, k)
		case !now && before.ok:
			gone = append(gone, k)
		}
	})
	return appeared, gone
}
