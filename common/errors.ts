// The base of natops's typed errors: an expected failure with a message meant for a person
// (the CLI prints it without a stack trace). Subclasses carry the context as fields.
export class NatopsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}
