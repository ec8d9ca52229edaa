import { CALL_PROFILE, CallSite, HAPPY_PATH, bucketDemand, bucketOf, pathDemand } from '../../../../domain/pacing/call-profile.js';
import { Bucket } from '../../../../domain/pacing/quotas.js';
import { Step } from '../../../../domain/rotation.js';

describe('the call profile', () => {
  it('adds up to the measured happy path after the API and DynamoDB thrift (rotor demo --report, 30 calls per rotation)', () => {
    const { calls } = pathDemand(HAPPY_PATH);
    expect(calls).toEqual({
      'iot:ListPrincipalThings': 2,
      'states:StartExecution': 1,
      'iot:ListAuditFindings': 0.01,
      // 8 before issue 12: device-message no longer releases a token it answered with success.
      'dynamodb:UpdateItem': 6.01,
      'dynamodb:GetItem': 5,
      'iot:ListThingPrincipals': 1,
      'iotdata:Publish': 3,
      'states:SendTaskSuccess': 2,
      'iot:DescribeCertificate': 1,
      'iot:ListAttachedPolicies': 1,
      'iot:CreateCertificateFromCsr': 1,
      'iot:AttachPolicy': 1,
      'iot:AttachThingPrincipal': 1,
      'iot:UpdateCertificate': 1,
      'iot:DetachPolicy': 1,
      'iot:DetachThingPrincipal': 1,
      'iot:DeleteCertificate': 1,
      'dynamodb:TransactWriteItems': 1,
    });
    expect(Object.values(calls).reduce((a, b) => a + b, 0)).toBeCloseTo(30.02, 5);
  });

  it('enters the eleven states of a successful rotation (a paced step is its Task, Choice and Pass) and reconnects the device once', () => {
    const { perBucket } = pathDemand(HAPPY_PATH);
    expect(perBucket[Bucket.StateTransition]).toBe(11);
    expect(perBucket[Bucket.MqttConnect]).toBe(1);
    expect(perBucket[Bucket.SendTask]).toBe(2);
  });

  it('names the workflow\'s steps by their domain names', () => {
    for (const step of [Step.ClaimDevice, Step.ResumeOrRotate, Step.RequestCsr, Step.IssueCertificate, Step.DeliverCertificate, Step.RetireOldCertificate, Step.Rotated]) {
      expect(Object.values(CallSite)).toContain(step);
    }
  });

  it('paces exactly the sites that spend IoT control-plane calls, and never a device-driven one', () => {
    // The first csr_req lists the thing's certificates (10 TPS); a re-sent one calls nothing scarce.
    expect(CALL_PROFILE[CallSite.RequestCsrResent].paced).toBe(false);
    expect(bucketDemand(CALL_PROFILE[CallSite.RequestCsrResent])).toEqual({ 'iotdata:Publish': 1, 'states:StateTransition': 1 });
    const paced = Object.values(CallSite).filter((site) => CALL_PROFILE[site].paced).sort();
    expect(paced).toEqual([
      CallSite.RequestCsr,
      CallSite.IssueCertificate,
      CallSite.IssueRejected,
      CallSite.RetireOldCertificate,
      CallSite.RollBackIssued,
      CallSite.StartRotation,
    ].sort());
    for (const site of [CallSite.CsrResponse, CallSite.CertificateAck, CallSite.CertificateError, CallSite.IgnoredMessage]) expect(CALL_PROFILE[site].paced).toBe(false);
  });

  it('maps SendTask* onto one bucket and leaves unthrottled services out', () => {
    expect(bucketOf('states:SendTaskSuccess')).toBe(Bucket.SendTask);
    expect(bucketOf('states:SendTaskFailure')).toBe(Bucket.SendTask);
    expect(bucketOf('dynamodb:UpdateItem')).toBeUndefined();
    expect(bucketDemand(CALL_PROFILE[CallSite.RetireOldCertificate])).toEqual({
      'iot:ListPrincipalThings': 1,
      'iot:UpdateCertificate': 1,
      'iot:DetachPolicy': 1,
      'iot:DetachThingPrincipal': 1,
      'iot:DeleteCertificate': 1,
      'iotdata:Publish': 1,
      'states:StateTransition': 3,
    });
  });
});
