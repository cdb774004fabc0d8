#!/usr/bin/env python3
"""Port of tests/architecture.rs's lexer: function lengths (fn .. closing brace) outside #[cfg(test)],
string literals outside tests. Usage: fnlen.py ROOT DIR... [--slugs] [--top N]"""
import sys, os, re
def is_ident(c): return c.isalnum() or c == '_'
def lex(text):
    ch=list(text); code=ch[:]; strings=[]; n=len(ch); i=0
    def blank(a,b):
        for k in range(a,min(b,n)):
            if code[k]!='\n': code[k]=' '
    def starts_token(i):
        b1 = ch[i-1] if i>=1 else None
        if b1=='b': return not (i>=2 and is_ident(ch[i-2]))
        if b1 is None: return True
        return not is_ident(b1)
    while i<n:
        c=ch[i]; nx=ch[i+1] if i+1<n else None
        if c=='/' and nx=='/':
            e=text.find('\n',i); e=n if e<0 else e; blank(i,e); i=e
        elif c=='/' and nx=='*':
            d=0;j=i
            while j<n:
                if ch[j]=='/' and j+1<n and ch[j+1]=='*': d+=1;j+=2
                elif ch[j]=='*' and j+1<n and ch[j+1]=='/':
                    d-=1;j+=2
                    if d==0: break
                else: j+=1
            blank(i,j); i=j
        elif c=='r' and nx in ('"','#') and starts_token(i):
            h=0
            while i+1+h<n and ch[i+1+h]=='#': h+=1
            if i+1+h>=n or ch[i+1+h]!='"': i+=1; continue
            op=i+1+h; clos='"'+'#'*h; j=text.find(clos,op+1); j=n if j<0 else j
            strings.append((op,text[op+1:j])); blank(op+1,j); i=j+len(clos)
        elif c=='"':
            j=i+1
            while j<n and ch[j]!='"': j+= 2 if ch[j]=='\\' else 1
            strings.append((i,''.join(ch[i+1:min(j,n)]))); blank(i+1,min(j,n)); i=j+1
        elif c=="'":
            end=None
            if nx=='\\':
                for j in range(i+2,n):
                    if ch[j]=="'": end=j;break
            elif i+2<n and ch[i+2]=="'": end=i+2
            if end is not None: blank(i+1,end); i=end+1
            else: i+=1
        else: i+=1
    return ''.join(code), strings
def matching(code,o):
    d=0
    for j in range(o,len(code)):
        if code[j]=='{': d+=1
        elif code[j]=='}':
            d-=1
            if d==0: return j
    return len(code)
def test_ranges(code):
    r=[]
    for m in re.finditer(re.escape('#[cfg(test)]'),code):
        s=m.start(); j=s
        while j<len(code) and code[j] not in '{;': j+=1
        if j<len(code) and code[j]=='{': r.append((s,matching(code,j)))
        else: r.append((s,j))
    return r
def files(d):
    for dp,dn,fn in os.walk(d):
        for f in fn:
            if f.endswith('.rs'): yield os.path.join(dp,f)
def analyse(path):
    text=open(path,encoding='utf-8').read(); code,strings=lex(text); tr=test_ranges(code)
    # #[cfg(test)] mod x; -> whole file x.rs is tests (approximation: handled by caller)
    return text,code,strings,tr
def line_of(code,o): return code.count('\n',0,o)+1
def main():
    args=sys.argv[1:]; root=args[0]; dirs=[a for a in args[1:] if not a.startswith('--')]
    top=20
    if '--top' in args: top=int(args[args.index('--top')+1]); dirs=[d for d in dirs if d!=str(top)]
    all_files=sorted(f for d in dirs for f in files(os.path.join(root,d)))
    data={f:analyse(f) for f in all_files}
    # test-module files
    testfiles=set()
    for f,(text,code,strings,tr) in data.items():
        stem=f[:-3]; dr=stem[:-4] if stem.endswith('/mod') else stem
        if os.path.basename(f) in ('lib.rs','main.rs'): dr=os.path.dirname(f)
        for s,e in tr:
            item=code[s:e]; m=re.search(r'mod (\w+)',item)
            if m and e<len(code) and code[e]==';':
                testfiles.add(f'{dr}/{m.group(1)}.rs'); testfiles.add(f'{dr}/{m.group(1)}/mod.rs')
    fns=[]
    for f,(text,code,strings,tr) in data.items():
        if f in testfiles: continue
        intest=lambda o: any(s<=o<=e for s,e in tr)
        for m in re.finditer(r'fn ',code):
            a=m.start()
            if a>0 and is_ident(code[a-1]): continue
            nm=re.match(r'\w+',code[a+3:])
            if not nm or intest(a): continue
            j=a
            while j<len(code) and code[j] not in '{;': j+=1
            if j>=len(code) or code[j]==';': continue
            c=matching(code,j); fns.append((line_of(code,c)-line_of(code,a)+1, os.path.relpath(f,root)+':'+str(line_of(code,a)), nm.group(0)))
    fns.sort(reverse=True)
    print(f'# functions measured outside tests: {len(fns)}; over 100 lines: {sum(1 for x in fns if x[0]>100)}')
    for x in fns[:top]: print(f'{x[0]:5d}  {x[1]}  fn {x[2]}')
    if '--slugs' in args:
        for slug in ['meta','tiktok','google','pinterest','twitter']:
            pl=[]
            for f,(text,code,strings,tr) in data.items():
                if f in testfiles: continue
                for o,s in strings:
                    if s==slug and not any(a<=o<=b for a,b in tr): pl.append(os.path.relpath(f,root)+':'+str(line_of(code,o)))
            print(f'slug "{slug}": {len(pl)} literal(s) outside tests: {pl}')
if __name__=="__main__": main()
