/**
 * The simulator's future events: a binary min-heap on time kept in typed arrays (time, device,
 * kind), so a million-device run holds no per-event objects. Equal times leave in the order the
 * heap gives them, which is deterministic for a given sequence of pushes.
 */
export class EventQueue {
  private times: Float64Array;
  private devices: Int32Array;
  private kinds: Uint8Array;
  private count = 0;

  constructor(capacity = 1024) {
    this.times = new Float64Array(capacity);
    this.devices = new Int32Array(capacity);
    this.kinds = new Uint8Array(capacity);
  }

  get size(): number {
    return this.count;
  }

  /** Time of the earliest event; Infinity when empty. */
  peekTime(): number {
    return this.count > 0 ? this.times[0] : Infinity;
  }

  push(time: number, device: number, kind: number): void {
    if (this.count === this.times.length) this.grow();
    let i = this.count++;
    const { times, devices, kinds } = this;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (times[parent] <= time) break;
      times[i] = times[parent];
      devices[i] = devices[parent];
      kinds[i] = kinds[parent];
      i = parent;
    }
    times[i] = time;
    devices[i] = device;
    kinds[i] = kind;
  }

  /** Removes the earliest event into `out` (time, device, kind); false when empty. */
  pop(out: { time: number; device: number; kind: number }): boolean {
    if (this.count === 0) return false;
    const { times, devices, kinds } = this;
    out.time = times[0];
    out.device = devices[0];
    out.kind = kinds[0];
    const last = --this.count;
    if (last === 0) return true;
    const time = times[last];
    const device = devices[last];
    const kind = kinds[last];
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= last) break;
      if (child + 1 < last && times[child + 1] < times[child]) child++;
      if (times[child] >= time) break;
      times[i] = times[child];
      devices[i] = devices[child];
      kinds[i] = kinds[child];
      i = child;
    }
    times[i] = time;
    devices[i] = device;
    kinds[i] = kind;
    return true;
  }

  private grow(): void {
    const capacity = this.times.length * 2;
    const times = new Float64Array(capacity);
    times.set(this.times);
    const devices = new Int32Array(capacity);
    devices.set(this.devices);
    const kinds = new Uint8Array(capacity);
    kinds.set(this.kinds);
    this.times = times;
    this.devices = devices;
    this.kinds = kinds;
  }
}
