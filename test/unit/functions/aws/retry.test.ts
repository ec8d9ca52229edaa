import { DEFAULT_MAX_ATTEMPTS, retrySettings } from '../../../../functions/aws/retry';

describe('retrySettings', () => {
  const saved = process.env.AWS_MAX_ATTEMPTS;
  afterEach(() => {
    if (saved === undefined) delete process.env.AWS_MAX_ATTEMPTS;
    else process.env.AWS_MAX_ATTEMPTS = saved;
  });

  it('uses adaptive retries with Rotor’s default attempts', () => {
    delete process.env.AWS_MAX_ATTEMPTS;
    expect(retrySettings()).toEqual({ maxAttempts: DEFAULT_MAX_ATTEMPTS, retryMode: 'adaptive' });
  });

  it('lets AWS_MAX_ATTEMPTS override the default, and an explicit option override both', () => {
    process.env.AWS_MAX_ATTEMPTS = '2';
    expect(retrySettings().maxAttempts).toBe(2);
    expect(retrySettings({ maxAttempts: 4 }).maxAttempts).toBe(4);
  });

  it('ignores an AWS_MAX_ATTEMPTS that is not a positive whole number', () => {
    for (const bad of ['0', '-1', '2.5', 'many', '']) {
      process.env.AWS_MAX_ATTEMPTS = bad;
      expect(retrySettings().maxAttempts).toBe(DEFAULT_MAX_ATTEMPTS);
    }
  });
});
