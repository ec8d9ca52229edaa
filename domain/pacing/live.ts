import { Step } from '../rotation.js';
import { CallSite } from './call-profile.js';

/**
 * The live workflow's pacing, as names: the one DynamoDB item that holds the shared budget, the
 * state machine's variable that carries a step's reservation across its Wait, and the states of
 * each paced step's loop (docs/fleet-scale.md, "How the live slice shares the budget").
 */

/**
 * The budget item in the rotation table. It has no `status` attribute, so the sparse by-status
 * index (and with it `rotor status`) never sees it; its `pk` is no thing's (`thing#…`).
 */
export const PACING_KEY = { pk: 'pacing', sk: 'budget' } as const;

/**
 * The ASL variable a paced step's Wait assigns (the time its calls are reserved for) and the step
 * reads back as `pacedUntil`: a step that finds it holds a reservation does not reserve twice.
 * "Claim device" sets it to null, and each step's "done" state clears it.
 */
export const PACED_UNTIL_VARIABLE = 'pacedUntil';

/** A paced step's loop: the Choice after it, the Wait, and the Pass that files its result. */
export interface PacedStates {
  step: Step;
  /** What its calls cost (call-profile.ts). */
  site: CallSite;
  choice: Step;
  wait: Step;
  done: Step;
}

export const PACED_STEPS: readonly PacedStates[] = [
  { step: Step.IssueCertificate, site: CallSite.IssueCertificate, choice: Step.IssueCertificatePaced, wait: Step.IssueCertificateWait, done: Step.IssueCertificateDone },
  {
    step: Step.RetireOldCertificate,
    site: CallSite.RetireOldCertificate,
    choice: Step.RetireOldCertificatePaced,
    wait: Step.RetireOldCertificateWait,
    done: Step.RetireOldCertificateDone,
  },
  { step: Step.RollBack, site: CallSite.RollBackIssued, choice: Step.RollBackPaced, wait: Step.RollBackWait, done: Step.RollBackDone },
];

/** A paced step may sleep in its Lambda when its calls are due sooner than this; later, it waits in the workflow. */
export const MAX_IN_LAMBDA_WAIT_MS = 1_000;
