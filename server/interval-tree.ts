// A set of closed intervals [start, end] (bigint offsets) that answers "which ones overlap [s, e]"
// in O(log n + k): a treap ordered by (start, seq), each node knowing the largest end in its
// subtree so that a query skips every subtree that ends before s. The lock table keeps its held
// locks and its waiters in these, one per file, so that no lock operation scans a whole file.
// Random priorities keep the tree balanced in expectation whatever order peers insert in.

export interface Interval { readonly start: bigint; readonly end: bigint; /** Unique per item: breaks ties of start. */ readonly seq: number }

interface Node<T extends Interval> { item: T; prio: number; maxEnd: bigint; left: Node<T> | null; right: Node<T> | null }

function before(a: Interval, b: Interval): boolean {
  return a.start < b.start || (a.start === b.start && a.seq < b.seq);
}

function update<T extends Interval>(n: Node<T>): Node<T> {
  let m = n.item.end;
  if (n.left && n.left.maxEnd > m) m = n.left.maxEnd;
  if (n.right && n.right.maxEnd > m) m = n.right.maxEnd;
  n.maxEnd = m;
  return n;
}

/** Both trees' items, every item of `a` before every item of `b`. */
function merge<T extends Interval>(a: Node<T> | null, b: Node<T> | null): Node<T> | null {
  if (!a) return b;
  if (!b) return a;
  if (a.prio > b.prio) {
    a.right = merge(a.right, b);
    return update(a);
  }
  b.left = merge(a, b.left);
  return update(b);
}

/** [items before `key`, the rest]. */
function split<T extends Interval>(n: Node<T> | null, key: Interval): [Node<T> | null, Node<T> | null] {
  if (!n) return [null, null];
  if (before(n.item, key)) {
    const [l, r] = split(n.right, key);
    n.right = l;
    return [update(n), r];
  }
  const [l, r] = split(n.left, key);
  n.left = r;
  return [l, update(n)];
}

export class IntervalTree<T extends Interval> {
  private root: Node<T> | null = null;
  private count = 0;

  get size(): number { return this.count; }

  insert(item: T): void {
    const [l, r] = split(this.root, item);
    this.root = merge(merge(l, update({ item, prio: Math.random(), maxEnd: item.end, left: null, right: null })), r);
    this.count += 1;
  }

  /** Removes this very item (same start and seq); false when it is not in the tree. */
  delete(item: T): boolean {
    const found = { hit: false };
    this.root = remove(this.root, item, found);
    if (found.hit) this.count -= 1;
    return found.hit;
  }

  /**
   * Calls `fn` for every item overlapping [s, e], in (start, seq) order, until `fn` returns true.
   * `fn` must not change the tree.
   */
  someOverlap(s: bigint, e: bigint, fn: (item: T) => boolean | void): boolean {
    return visit(this.root, s, e, fn);
  }

  /** Every item, in (start, seq) order. */
  all(): T[] {
    const out: T[] = [];
    const walk = (n: Node<T> | null): void => {
      if (!n) return;
      walk(n.left);
      out.push(n.item);
      walk(n.right);
    };
    walk(this.root);
    return out;
  }
}

function remove<T extends Interval>(n: Node<T> | null, item: T, found: { hit: boolean }): Node<T> | null {
  if (!n) return null;
  if (n.item.seq === item.seq && n.item.start === item.start) {
    found.hit = true;
    return merge(n.left, n.right);
  }
  if (before(item, n.item)) n.left = remove(n.left, item, found);
  else n.right = remove(n.right, item, found);
  return update(n);
}

function visit<T extends Interval>(n: Node<T> | null, s: bigint, e: bigint, fn: (item: T) => boolean | void): boolean {
  // A subtree whose largest end is before s holds nothing that overlaps.
  if (!n || n.maxEnd < s) return false;
  if (visit(n.left, s, e, fn)) return true;
  // Everything from here on starts after e.
  if (n.item.start > e) return false;
  if (n.item.end >= s && fn(n.item) === true) return true;
  return visit(n.right, s, e, fn);
}
