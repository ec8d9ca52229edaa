import { CALL_PROFILE, CallSite } from '../../domain/pacing/call-profile.js';
import { Step } from '../../domain/rotation.js';
import { loadWiring } from '../../wiring/index.js';

/**
 * The call profile (domain/pacing/call-profile.ts) is what pacing, `rotor simulate` and `rotor
 * plan` believe each step spends. It must not claim a call a function is not even allowed to
 * make: every operation of a Lambda site is among that function's IAM actions in wiring.json,
 * and every site that names a workflow state names one of domain's steps.
 */
const wiring = loadWiring();

/** The IAM action an operation needs (IoT's data plane is authorised as iot:Publish). */
function iamAction(operation: string): string | undefined {
  if (operation === 'iotdata:Publish') return 'iot:Publish';
  // A transaction is authorised per item action (Put/Update), checked by the IAM contract test.
  if (operation === 'dynamodb:TransactWriteItems') return undefined;
  return operation;
}

const STEPS: readonly string[] = Object.values(Step);

describe('the call profile agrees with the wiring and the domain', () => {
  const lambdaSites = Object.values(CallSite).filter((site) => CALL_PROFILE[site].lambda || site === CallSite.StartRotation);

  it.each(lambdaSites)('%s calls only what its function may call', (site) => {
    const functionName = site === CallSite.StartRotation ? 'start-rotations' : (CALL_PROFILE[site].lambda?.functionName as string);
    const spec = wiring.functions[functionName];
    expect(spec).toBeDefined();
    const allowed = Object.keys(spec.permissions);
    const claimed = Object.keys(CALL_PROFILE[site].calls).map(iamAction).filter((action): action is string => action !== undefined);
    expect(claimed.filter((action) => !allowed.includes(action))).toEqual([]);
  });

  it('names workflow states by their domain names', () => {
    const statesEntered = Object.values(CallSite).filter((site) => CALL_PROFILE[site].transitions > 0);
    for (const site of statesEntered) {
      const state = site.replace(/ \(.*\)$/, '');
      expect([site, STEPS.includes(state)]).toEqual([site, true]);
    }
  });
});
