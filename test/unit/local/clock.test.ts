import { scaledClock } from '../../../local/types';

describe('scaledClock', () => {
  afterEach(() => jest.useRealTimers());

  it('scales workflow seconds down to wall-clock milliseconds', async () => {
    // Prepare
    jest.useFakeTimers();
    const clock = scaledClock(0.001);
    let done = false;
    // Act
    const sleeping = clock.sleep(3600).then(() => (done = true));
    await jest.advanceTimersByTimeAsync(3599);
    const early = done;
    await jest.advanceTimersByTimeAsync(1);
    await sleeping;
    // Assess: one hour at scale 0.001 is 3.6 s.
    expect(early).toBe(false);
    expect(done).toBe(true);
  });

  it('does not fire early when a sleep is longer than one timer can hold (ASL default timeouts)', async () => {
    // Prepare
    jest.useFakeTimers();
    const clock = scaledClock(1);
    let done = false;
    // Act: 30 days, beyond the 2^31-1 ms Node allows one timer.
    const sleeping = clock.sleep(30 * 24 * 3600).then(() => (done = true));
    await jest.advanceTimersByTimeAsync(1000);
    const afterOneSecond = done;
    await jest.advanceTimersByTimeAsync(30 * 24 * 3600 * 1000);
    await sleeping;
    // Assess
    expect(afterOneSecond).toBe(false);
    expect(done).toBe(true);
  });

  it('stops sleeping when aborted', async () => {
    const clock = scaledClock(1);
    const controller = new AbortController();
    const sleeping = clock.sleep(60, controller.signal);
    controller.abort(new Error('stopped'));
    await expect(sleeping).rejects.toThrow('stopped');
  });
});
