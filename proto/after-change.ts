// A change's reply may carry the attributes the change left on the directories it changed (create,
// mkdir, mknod, symlink, link, unlink, rmdir, rename) and on a renamed file: ServerFrame.attrs,
// NFS's post-op attributes. They travel beside the reply object, by identity, so that the typed
// methods of a session (proto/session-client.ts) and of the in-process link (server/local-link.ts)
// keep their reply types: afterChange(reply) gives them to whoever asked for the change.
// (Attr is session-client.ts's; this module names no type of it, which would make an import cycle.)

const changed = new WeakMap<object, readonly object[]>();

/** The attributes (Attr) `reply`, a change's reply object, came with; none for any other reply. */
export function afterChange<A extends object>(reply: unknown): readonly A[] {
  return typeof reply === 'object' && reply !== null ? (changed.get(reply) as readonly A[] | undefined) ?? [] : [];
}

/** Records the attributes a change's reply comes with (the session's decoder, the server's op table). */
export function setAfterChange(reply: unknown, attrs: readonly object[] | undefined): void {
  if (attrs && attrs.length > 0 && typeof reply === 'object' && reply !== null) changed.set(reply, [...attrs]);
}
