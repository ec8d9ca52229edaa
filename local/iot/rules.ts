import type { SqsUrlSender } from '../sqs/sqs-service.js';
import { AwsError, type LambdaInvoker } from '../types.js';
import { evaluateSelect, parseRuleSql, topicMatches, type ParsedRuleSql, type RuleMessage } from './rule-sql.js';

export interface TopicRuleInput {
  ruleName: string;
  sql: string;
  /** The Lambda function (name or ARN) the rule's one action invokes; or, instead, */
  functionArn?: string;
  /** the SQS queue (URL) the rule's one action sends the selected JSON to. */
  queueUrl?: string;
  description?: string;
  ruleDisabled?: boolean;
  awsIotSqlVersion?: string;
}

export interface TopicRule extends TopicRuleInput {
  ruleArn: string;
  createdAt: Date;
  parsed: ParsedRuleSql;
}

/** A failed rule action, kept as AWS's rule error action would report it. */
export interface RuleError {
  ruleName: string;
  topic: string;
  clientId: string;
  /** The action's target: a function ARN or a queue URL. */
  functionArn: string;
  error: string;
  at: Date;
}

export interface RulesEngineOptions {
  invoker: LambdaInvoker;
  /** Where SQS actions send; a rule with an SQS action needs it. */
  queues?: SqsUrlSender;
  region: string;
  account: string;
  now?: () => Date;
  /** Called for every rule error (the runtime logs them). */
  onError?: (error: RuleError) => void;
}

const RULE_NAME = /^[a-zA-Z0-9_]{1,128}$/;
const MAX_KEPT_ERRORS = 500;

/**
 * The IoT rules engine: every message that reaches the broker (from a device or from the
 * data plane) is matched against each rule's topic filter, and a match invokes the rule's
 * Lambda asynchronously with the selected JSON, or sends it to the rule's SQS queue. Action failures are recorded, never thrown
 * back into the broker: a device's publish does not fail because a rule's action did.
 */
export class RulesEngine {
  private readonly rules = new Map<string, TopicRule>();
  private readonly errors: RuleError[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private readonly now: () => Date;
  private invocations = 0;

  constructor(private readonly options: RulesEngineOptions) {
    this.now = options.now ?? (() => new Date());
  }

  ruleArn(ruleName: string): string {
    return `arn:aws:iot:${this.options.region}:${this.options.account}:rule/${ruleName}`;
  }

  createRule(input: TopicRuleInput): TopicRule {
    if (!RULE_NAME.test(input.ruleName)) throw new AwsError('InvalidRequestException', `ruleName ${JSON.stringify(input.ruleName)} must match [a-zA-Z0-9_]{1,128}`);
    if (this.rules.has(input.ruleName)) throw new AwsError('ResourceAlreadyExistsException', `rule ${input.ruleName} already exists`, 409);
    if (!input.functionArn === !input.queueUrl) throw new AwsError('InvalidRequestException', 'a rule needs one action: lambda or sqs');
    if (input.queueUrl && !this.options.queues) throw new AwsError('InvalidRequestException', 'this local rules engine has no SQS to send to');
    const rule: TopicRule = { ...input, ruleArn: this.ruleArn(input.ruleName), createdAt: this.now(), parsed: parseRuleSql(input.sql) };
    this.rules.set(input.ruleName, rule);
    return rule;
  }

  // AWS answers GetTopicRule/DeleteTopicRule for a rule that does not exist with UnauthorizedException.
  getRule(ruleName: string): TopicRule {
    const rule = this.rules.get(ruleName);
    if (!rule) throw new AwsError('UnauthorizedException', `rule ${ruleName} does not exist`, 401);
    return rule;
  }

  listRules(topic?: string): TopicRule[] {
    return [...this.rules.values()].filter((rule) => topic === undefined || rule.parsed.topicFilter === topic);
  }

  deleteRule(ruleName: string): void {
    if (!this.rules.delete(ruleName)) throw new AwsError('UnauthorizedException', `rule ${ruleName} does not exist`, 401);
  }

  /** Runs every matching rule for one message; returns at once, the invocations run on. */
  dispatch(message: RuleMessage): number {
    let matched = 0;
    for (const rule of this.rules.values()) {
      if (rule.ruleDisabled || !topicMatches(rule.parsed.topicFilter, message.topic)) continue;
      matched++;
      const selected = evaluateSelect(rule.parsed.items, message);
      if (!selected.ok) {
        this.record(rule, message, selected.reason);
        continue;
      }
      const run = this.invoke(rule, message, selected.document);
      this.inFlight.add(run);
      void run.finally(() => this.inFlight.delete(run));
    }
    return matched;
  }

  private async invoke(rule: TopicRule, message: RuleMessage, document: Record<string, unknown>): Promise<void> {
    this.invocations++;
    try {
      // As in AWS: the action succeeds once Lambda (or SQS) has queued the event. What the
      // function then does (errors, retries, its on-failure destination) is Lambda's business,
      // never a rule error; only an Invoke or a SendMessage that fails (no such function or
      // queue, refused) reaches the error action.
      if (rule.queueUrl) (this.options.queues as SqsUrlSender).sendToUrl(rule.queueUrl, JSON.stringify(document));
      else await this.options.invoker.invoke(rule.functionArn as string, document, 'Event');
    } catch (error) {
      this.record(rule, message, error instanceof Error ? `${error.name}: ${error.message}` : String(error));
    }
  }

  private record(rule: TopicRule, message: RuleMessage, error: string): void {
    const entry: RuleError = { ruleName: rule.ruleName, topic: message.topic, clientId: message.clientId, functionArn: rule.functionArn ?? rule.queueUrl ?? '', error, at: this.now() };
    this.errors.push(entry);
    if (this.errors.length > MAX_KEPT_ERRORS) this.errors.shift();
    this.options.onError?.(entry);
  }

  ruleErrors(): readonly RuleError[] {
    return [...this.errors];
  }

  /** How many rule actions were started (the demo counts them). */
  invocationCount(): number {
    return this.invocations;
  }

  /** Resolves when every invocation started so far has finished (tests and shutdown). */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }
}
