// The AWS calls the aws provider makes at plan time, answered locally for moved-check.sh: STS
// GetCallerIdentity (query protocol, XML) and IoT DescribeEndpoint (REST, JSON) for the data
// sources, and Step Functions ValidateStateMachineDefinition (JSON 1.0), which it answers OK:
// the ASL is held to the domain by the contract tests, not here. Prints its URL on the first
// line of stdout; every other request is a 400.
import { createServer } from 'node:http';

const ACCOUNT = '123456789012';

const server = createServer((req, res) => {
  let body = '';
  req.on('data', (chunk) => (body += chunk));
  req.on('end', () => {
    if (req.method === 'POST' && body.includes('Action=GetCallerIdentity')) {
      res.writeHead(200, { 'content-type': 'text/xml' });
      res.end(
        `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult>` +
          `<Arn>arn:aws:iam::${ACCOUNT}:user/moved-check</Arn><UserId>AIDAEXAMPLE</UserId><Account>${ACCOUNT}</Account>` +
          `</GetCallerIdentityResult><ResponseMetadata><RequestId>moved-check</RequestId></ResponseMetadata></GetCallerIdentityResponse>`,
      );
      return;
    }
    if (req.headers['x-amz-target'] === 'AWSStepFunctions.ValidateStateMachineDefinition') {
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0' });
      res.end(JSON.stringify({ result: 'OK', diagnostics: [] }));
      return;
    }
    if (req.method === 'GET' && req.url?.startsWith('/endpoint')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ endpointAddress: 'a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com' }));
      return;
    }
    res.writeHead(400, { 'content-type': 'application/json', 'x-amzn-errortype': 'InvalidRequestException' });
    res.end(JSON.stringify({ message: `moved-check endpoint: no answer for ${req.method} ${req.url}` }));
  });
});

server.listen(0, '127.0.0.1', () => {
  console.log(`http://127.0.0.1:${server.address().port}`);
});
