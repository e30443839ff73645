// What a call came to, as one comparable string: 'OK', or the errno name it failed with.
export async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'OK';
  } catch (err) {
    return (err as { code: string }).code;
  }
}
