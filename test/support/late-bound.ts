// Lets a describe block name, up front, a value its beforeAll builds (the fixtures of mail.ts and
// principals.ts): the proxy forwards to the value once set; using it earlier is an error that says so.
export interface LateBound<T extends object> { value?: T; proxy: T; set(v: T): void }

export function lateBound<T extends object>(what: string): LateBound<T> {
  const box: LateBound<T> = {
    proxy: new Proxy({} as T, {
      get(_, key) {
        if (!box.value) throw new Error(`${what} is used before beforeAll built it`);
        const v: unknown = Reflect.get(box.value, key, box.value);
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(box.value) : v;
      },
    }),
    set(v) {
      box.value = v;
    },
  };
  return box;
}
